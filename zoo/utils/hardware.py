"""Hardware strings as zoo records them (on checkpoint cards, in run logs, benchmark records and studies): the
form ``zoo.utils.machine.hardware_description`` writes, the pattern that reads it, and the reading of older
records into that form. No torch here: ``zoo status`` reads run logs without it."""

from __future__ import annotations

import re

__all__ = ["HARDWARE_PATTERN", "NOT_RECORDED", "recorded_hardware"]

NOT_RECORDED = "not recorded"
# what ``cpu_description``/``hardware_description`` write, one machine of a run's "A + B" (parts optional where
# old records lack them: ``HARDWARE_PATTERN`` is what a test checks every recorded string against)
HARDWARE_PATTERN = re.compile(
    r"(?P<name>[^,()]+?)(?: \(family (?P<family>\d+) model (?P<model>\d+)\))?"
    r"(?:, (?P<cls>amx-bf16|avx512-bf16|avx512|avx2|aarch64|x86_64|class not recorded))?"
    r"(?:, (?P<threads>\d+) threads?)?(?: x (?P<processes>\d+) processes)?"
    r", (?P<precision>fp32|bf16|precision not recorded)")

# the older records: "AMD EPYC, 2 threads", "AMD EPYC (avx2), 2 threads", "NVIDIA H200"
_OLD_HARDWARE = re.compile(r"(?P<name>[^,()]+?)(?: \((?P<cls>[a-z0-9_-]+)\))?(?:, (?P<threads>\d+) threads?)?")


def recorded_hardware(text: str | None, precision: str | None = None) -> str:
    """A recorded hardware string in ``HARDWARE_PATTERN``'s form, for one written before that form: the CPU
    class and the precision ``"not recorded"`` where the record does not say them, nothing guessed. A string
    already in the form, or one that neither form reads, comes back unchanged (None: ``"not recorded"``)."""
    if not text:
        return NOT_RECORDED
    parts = []
    for part in text.split(" + "):  # a run resumed on other machines names each
        old = _OLD_HARDWARE.fullmatch(part)
        if HARDWARE_PATTERN.fullmatch(part) or old is None:
            parts.append(part)
            continue
        words = [old["name"]]
        if old["threads"]:  # a CPU: a GPU's record is its name alone
            words.append(old["cls"] or f"class {NOT_RECORDED}")
            words.append(f"{old['threads']} thread{'s' if old['threads'] != '1' else ''}")
        words.append(precision or f"precision {NOT_RECORDED}")
        parts.append(", ".join(words))
    return " + ".join(parts)
