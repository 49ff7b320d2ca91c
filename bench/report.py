"""What every benchmark report shares: its section of a Markdown document, and the notes on the run's
conditions (how long it took, how loaded the shared machine was)."""


def replace_section(document: str, section: str) -> str:
    """`document` with the section headed like `section` (its first line, a `## ` heading, up to the next
    `## ` heading) replaced by `section`, or `section` appended when the document has none."""
    lines, new = document.rstrip("\n").splitlines(), section.rstrip("\n").splitlines()
    heading = new[0]
    if heading not in lines:
        return "\n".join([*lines, "", *new]) + "\n"
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    rest = lines[end:]
    return "\n".join([*lines[:start], *new, *(["", *rest] if rest else [])]) + "\n"


def conditions(seconds: float, load_before: str, load_after: str, others: int, smoke: bool) -> list[str]:
    """The run's notes: its length and load average, and a warning when other test runs shared the cores
    (`others`: the most pytest processes seen) or when it was a --smoke run."""
    notes = [
        f"Total time {seconds:.0f} s; load average (1, 5, 15 min) {load_before} at the start, {load_after}"
        " at the end.",
    ]
    if others:
        notes.append(
            f"Other test runs shared the cores during this run (up to {others} pytest processes seen between"
            " figures): absolute numbers are lower than on an idle machine, and the ratios noisier."
        )
    if smoke:
        notes.append("A --smoke run: too short to be a measurement.")
    return notes
