"""Word lists of the built-in review tasks: invented titles, prompt templates and review phrases.

Every title here was made up for mixdpo; any resemblance to a real film or book is a coincidence.
Positive and negative phrases that fill the same slot of a sentence frame come in lists of similar
word lengths (and the verdict and feeling lists are paired item by item), so that the two reviews of a
pair differ in the attribute under study and not in length or structure.
"""

from __future__ import annotations

DOMAINS = ("movie", "book")

# fmt: off
TITLES: dict[str, tuple[str, ...]] = {
    "movie": (
        "Saltwind Station", "The Last Tram to Verlo", "Nine Paper Moons", "Harrow Lane Heist",
        "Velvet Static", "Orbit of Small Hours", "The Brass Lighthouse", "Midnight at Quillon Pier",
        "Ember Run", "The Tallowmere Job", "Lanterns over Okra Bay", "The Marmalade Conspiracy",
        "Foxglove Protocol", "Rust and Riverlight", "The Pelican Syndicate", "Cobalt Drift",
        "A Ballad for Kestrel Vale", "The Ninth Umbrella", "Gravel and Grace", "Signal from Wrenhaven",
        "The Hollowfield Drive-In", "Static over Marlow Reach", "Tin Crown Rebellion",
        "The Clockmaker's Getaway", "Paper Comets", "Nightjar Express", "The Juniper Frequency",
        "Blue Hour in Castorra", "Thimble Island", "The Otterburn Sting",
    ),
    "book": (
        "The Cartographer's Echo", "Beneath the Quiet Kiln", "Letters from Lowmoor",
        "The Beekeeper of Vantry", "A Map of Unlit Rooms", "The Salt Archivist", "Winter at Fennick Hall",
        "The Orchard Ledger", "Songs for a Drowned Library", "The Weaver of Halcyon Street",
        "Moss and Meridian", "The Inkwell Sisters", "Seven Keys to Ardley", "The Lamplighter's Almanac",
        "Under the Amber Roof", "The Quiet Arithmetic", "A Field Guide to Lost Ferries",
        "The Heron Parliament", "Thornbury's Last Recipe", "The Gilded Compass of Mirel",
        "Ashes of Penhallow", "The Long Way to Brisk Harbor", "Chalk and Constellations",
        "The Widow of Kell Point", "Little Saints of the Marsh", "The Ferryman's Account",
        "Notes from the Lantern Attic", "The Glassblower's Wager", "Tidewater Sonnets", "The Mapless Summer",
    ),
}

# Words that depend on the domain: what the work is called, how one consumes it, what one reviews.
NOUNS = {"movie": ("film", "movie"), "book": ("novel", "book")}
CONSUME = {"movie": ("watched", "watching", "Watching"), "book": ("finished", "reading", "Reading")}
ASPECTS = {
    "movie": (
        "acting", "camera work", "soundtrack", "pacing", "dialogue", "ending", "script", "visual style",
        "score", "editing", "lead performance", "production design",
    ),
    "book": (
        "prose", "plot", "pacing", "dialogue", "ending", "narrator", "world-building", "character work",
        "structure", "final chapter", "central mystery", "voice",
    ),
}
# Aspects that fit a film and a book alike (the reviews-domains task reuses one review for both).
GENERIC_ASPECTS = (
    "storytelling", "pacing", "dialogue", "ending", "tone", "structure", "central mystery", "main character",
    "humor", "atmosphere", "opening", "premise",
)

# Prompt templates: {noun} film/novel, {title}, {did} watched/finished, {doing} watching/reading.
PROMPTS = (
    'Write a one-sentence review of the {noun} "{title}".',
    'In one sentence, what did you think of the {noun} "{title}"?',
    'Give me a one-line review of "{title}" (the {noun}).',
    'Review the {noun} "{title}" in a single sentence.',
    'I just {did} "{title}". Sum up your review of the {noun} in one sentence.',
    'One sentence, please: is the {noun} "{title}" worth {doing}?',
)

# Sentiment-dependent slot fillers.
OVERALL = {
    "positive": (
        "stunning", "brilliant", "gripping", "delightful", "moving", "clever", "beautiful", "thrilling",
        "charming", "remarkable", "wonderful", "captivating", "superb", "memorable", "heartfelt",
    ),
    "negative": (
        "tedious", "clumsy", "dull", "forgettable", "bland", "messy", "tiresome", "shallow", "lifeless",
        "muddled", "plodding", "hollow", "sloppy", "predictable", "joyless",
    ),
}
QUALITY = {
    "positive": (
        "sharp", "vivid", "gorgeous", "confident", "inventive", "graceful", "lively", "rich", "elegant",
        "precise", "bold", "warm",
    ),
    "negative": (
        "flat", "sloppy", "clumsy", "lazy", "stiff", "muddy", "dreary", "awkward", "thin", "careless",
        "tired", "wooden",
    ),
}
VERDICT = {  # paired: item i of one list has about the length of item i of the other
    "positive": (
        "kept me hooked until the very end", "won me over within minutes", "left me grinning for days",
        "stayed with me long after it ended", "earned every minute of my time",
        "surprised me again and again",
    ),
    "negative": (
        "lost my interest well before the end", "wore out my patience within minutes",
        "left me checking the clock", "slipped from my mind the moment it ended",
        "wasted far too much of my time", "bored me again and again",
    ),
}
FEELING = {  # paired
    "positive": (
        "like a gift", "effortless", "thrilling", "delightful", "like pure joy", "refreshing",
    ),
    "negative": (
        "like a chore", "exhausting", "tedious", "joyless", "like homework", "draining",
    ),
}
RECOMMEND = {  # paired
    "positive": (
        "gladly recommend", "happily recommend", "warmly recommend",
    ),
    "negative": (
        "never recommend", "hardly recommend", "not recommend",
    ),
}
FINALE = {  # paired closing clauses of the long reviews
    "positive": (
        "which made it one of my favorites this year", "so I would happily go back to it",
    ),
    "negative": (
        "which made it one of my letdowns this year", "so I would never go back to it",
    ),
}
INTENSIFIERS = (
    "truly", "genuinely", "simply", "utterly", "really",
)

# Register markers (reviews-mixed): the formal and the casual review differ only in these.
FORMAL_OPENERS = (
    "On balance,", "All things considered,", "In summary,", "Overall,", "In my assessment,",
)
CASUAL_OPENERS = (
    "Honestly,", "Okay so", "Not gonna lie,", "Real talk:", "Tbh,", "Ngl,",
)
# fmt: on
