"""Readable generated names ("brave-otter") for runs created without one."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "able", "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "daring",
    "eager", "fair", "fancy", "gentle", "glad", "golden", "grand", "happy", "hardy", "humble",
    "jolly", "keen", "kind", "lively", "lucky", "merry", "mighty", "nimble", "noble", "proud",
    "quick", "quiet", "rapid", "silver", "smart", "steady", "sunny", "swift", "tidy", "vivid",
    "warm", "wise", "witty", "zesty",
)  # fmt: skip
_ANIMALS = (
    "badger", "beaver", "bison", "crane", "dingo", "dolphin", "eagle", "falcon", "ferret",
    "finch", "fox", "gecko", "heron", "ibis", "jackal", "koala", "lemur", "lynx", "marmot",
    "mole", "moose", "newt", "ocelot", "otter", "owl", "panda", "puffin", "quail", "raven",
    "seal", "shrew", "sloth", "stoat", "swan", "tapir", "tiger", "toad", "vole", "walrus",
    "wombat", "yak", "zebra",
)  # fmt: skip


def generate_name() -> str:
    """An adjective-animal pair; collisions are harmless because names are not keys, and
    nothing depends on guessing them: a plain PRNG, not the OS's entropy (a system call each)."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"
