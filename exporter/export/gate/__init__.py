"""Export stage 2 (stage.py): the secret-scan gate over what is staged, and --redact."""
