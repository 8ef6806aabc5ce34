"""One-sentence reviews that can be rendered with different attributes but are otherwise the same.

:func:`draw_review` makes every random choice of one review once (sentence frame, title, aspects,
adjectives for both sentiments, elaboration clause, openers); :meth:`ReviewDraft.render` then turns the
draft into text for a given **sentiment** (positive / negative), **length** (short / long: the long
review appends an elaboration clause to the short one) and **register** (none / formal / casual: an
opener, and a casual review ends with "!"). Two renderings of one draft differ exactly in the
attributes that were changed, which is what a preference pair over that attribute needs:

>>> import random
>>> draft = draw_review(random.Random(3), "movie", title="Paper Comets")
>>> draft.render("positive")
'Paper Comets is simply charming, and its pacing is confident.'
>>> draft.render("negative")
'Paper Comets is simply predictable, and its pacing is thin.'
>>> draft.render("negative", long=True, register="casual")  # doctest: +ELLIPSIS
'Ngl, Paper Comets is simply predictable, and its pacing is thin, where even the score feels ...!'
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mixdpo.tasks.words import (
    ASPECTS,
    CASUAL_OPENERS,
    CONSUME,
    FEELING,
    FINALE,
    FORMAL_OPENERS,
    GENERIC_ASPECTS,
    INTENSIFIERS,
    NOUNS,
    OVERALL,
    QUALITY,
    RECOMMEND,
    VERDICT,
)

SENTIMENTS = ("positive", "negative")
REGISTERS = ("formal", "casual")


@dataclass(frozen=True)
class Frame:
    """A sentence template per sentiment; ``lower_ok``: its first word may be lowercased after an opener."""

    positive: str
    negative: str
    lower_ok: bool = False

    def template(self, sentiment: str) -> str:
        return self.positive if sentiment == "positive" else self.negative


def _same(template: str, lower_ok: bool = False) -> Frame:
    return Frame(template, template, lower_ok)


# Frames that name the title ({T}); slots are filled by draw_review.
NAMED_FRAMES = (
    _same("{T} is {a_A} {n} whose {asp} is {Q}."),
    Frame("{T} {V}, thanks to its {Q} {asp}.", "{T} {V}, mostly because of its {Q} {asp}."),
    _same("The {asp} in {T} is {Q}, and the whole {n} feels {A}.", lower_ok=True),
    _same("{act} {T} felt {F}; the {asp} is {Q} throughout.", lower_ok=True),
    _same("I would {rec} {T}, because its {asp} is {Q}."),
    _same("{T} is {a_A} {n}: the {asp} is {Q}, the {asp2} {Q2}."),
    _same("With its {Q} {asp}, {T} is {a_A} {n}.", lower_ok=True),
    _same("{T} is {deg} {A}, and its {asp} is {Q}."),
    _same("From start to finish, {T} is {a_A} {n}.", lower_ok=True),
)
# Frames that fit any film or book and name neither (reviews-domains shows one review under both).
GENERIC_FRAMES = (
    _same("A {A} story: the {asp} is {Q} and the {asp2} is {Q2}.", lower_ok=True),
    Frame("It {V}, thanks to its {Q} {asp}.", "It {V}, mostly because of its {Q} {asp}.", lower_ok=True),
    _same("The {asp} is {Q}, and the whole thing feels {A}.", lower_ok=True),
    _same("I would {rec} it, because the {asp} is {Q}."),
    _same("{Deg} {A} from start to finish; even its {asp} is {Q}.", lower_ok=True),
    _same("The whole thing felt {F}, and the {asp} is {Q}.", lower_ok=True),
    _same("With its {Q} {asp}, this one is {deg} {A}.", lower_ok=True),
)
# Clauses that the long review appends (", <clause>.") in place of the short review's final period.
ELABORATIONS = (
    "while the {asp3} stays {Q3} from beginning to end",
    "not to mention the {Q3} {asp3} and the {Q4} {asp4}",
    "where even the {asp3} feels {Q3} and {Q4}",
    "{fin}",
    "plus the {asp3} is every bit as {Q3}",
)


def _article(word: str) -> str:
    return f"an {word}" if word[0].lower() in "aeiou" else f"a {word}"


@dataclass(frozen=True)
class ReviewDraft:
    """All random choices of one review; :meth:`render` varies only the requested attributes."""

    frame: Frame
    elaboration: str
    shared: dict[str, str]  # slots that do not depend on the sentiment
    by_sentiment: dict[str, dict[str, str]]  # sentiment -> its slots
    openers: dict[str, str]  # register -> opener

    def render(self, sentiment: str = "positive", long: bool = False, register: str | None = None) -> str:
        """The review with this sentiment, length (``long``) and register (``None``: no opener)."""
        if sentiment not in SENTIMENTS:
            raise ValueError(f"sentiment must be one of {SENTIMENTS}, got {sentiment!r}")
        slots = {**self.shared, **self.by_sentiment[sentiment]}
        text = self.frame.template(sentiment).format(**slots)
        if long:
            text = f"{text[:-1]}, {self.elaboration.format(**slots)}."
        if register is not None:
            if register not in REGISTERS:
                raise ValueError(f"register must be one of {REGISTERS} or None, got {register!r}")
            if self.frame.lower_ok:
                text = text[0].lower() + text[1:]
            text = f"{self.openers[register]} {text}"
            if register == "casual":
                text = text[:-1] + "!"
        return text


def _sentiment_slots(rng: random.Random, sentiment: str, paired: dict[str, int]) -> dict[str, str]:
    overall = rng.sample(OVERALL[sentiment], 1)[0]
    q1, q2, q3, q4 = rng.sample(QUALITY[sentiment], 4)
    return {
        "A": overall,
        "a_A": _article(overall),
        "Q": q1,
        "Q2": q2,
        "Q3": q3,
        "Q4": q4,
        "V": VERDICT[sentiment][paired["V"]],
        "F": FEELING[sentiment][paired["F"]],
        "rec": RECOMMEND[sentiment][paired["rec"]],
        "fin": FINALE[sentiment][paired["fin"]],
    }


def draw_review(rng: random.Random, domain: str, title: str | None = None) -> ReviewDraft:
    """Draw one review of a ``domain`` ("movie"/"book") work; with ``title=None`` a generic one.

    A review with a title uses :data:`NAMED_FRAMES` and the domain's aspects ("camera work", "prose");
    a generic one uses :data:`GENERIC_FRAMES` and aspects that fit both domains, so the same text can
    review a film or a book.
    """
    frames = NAMED_FRAMES if title is not None else GENERIC_FRAMES
    aspects = rng.sample(ASPECTS[domain] if title is not None else GENERIC_ASPECTS, 4)
    degree = rng.choice(INTENSIFIERS)
    shared = {
        "T": title or "",
        "n": rng.choice(NOUNS[domain]),
        "act": CONSUME[domain][2],
        "deg": degree,
        "Deg": degree.capitalize(),
        **{key: aspect for key, aspect in zip(("asp", "asp2", "asp3", "asp4"), aspects, strict=True)},
    }
    paired = {
        "V": rng.randrange(len(VERDICT["positive"])),
        "F": rng.randrange(len(FEELING["positive"])),
        "rec": rng.randrange(len(RECOMMEND["positive"])),
        "fin": rng.randrange(len(FINALE["positive"])),
    }
    return ReviewDraft(
        frame=rng.choice(frames),
        elaboration=rng.choice(ELABORATIONS),
        shared=shared,
        by_sentiment={s: _sentiment_slots(rng, s, paired) for s in SENTIMENTS},
        openers={"formal": rng.choice(FORMAL_OPENERS), "casual": rng.choice(CASUAL_OPENERS)},
    )


def draw_request(rng: random.Random, domain: str, title: str, templates: tuple[str, ...]) -> str:
    """A review request (the prompt's text) for ``title`` from one of ``templates``."""
    did, doing, _ = CONSUME[domain]
    return rng.choice(templates).format(noun=rng.choice(NOUNS[domain]), title=title, did=did, doing=doing)
