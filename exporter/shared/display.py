"""How values read in every table agentcap prints."""


def human_bytes(count: float) -> str:
    units = ("B", "KB", "MB", "GB", "TB")
    unit = 0
    while count >= 1024 and unit < len(units) - 1:
        count /= 1024
        unit += 1
    return f"{count:.0f} B" if unit == 0 else f"{count:.1f} {units[unit]}"
