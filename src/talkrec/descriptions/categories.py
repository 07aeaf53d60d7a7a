"""Group free-form tags into categories (genre, decade, place, mood, other).

Last.fm tags carry no category; paper 001's TEMPLATE lists tags by category. The default
rules below are plain vocabularies and patterns, deliberately simple and overridable in a
config (``categories:`` maps a category to extra words or regular expressions).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

DECADE_RE = re.compile(
    r"^((19|20)?[0-9]0'?s|(nineteen|twenty)?\s*(sixties|seventies|eighties|nineties|fifties|forties|thirties)"
    r"|(19|20)[0-9]{2}s?|[0-9]{2}s|[0-9]0's|oldies|old school|golden age)$")

GENRE_WORDS = (
    "rock", "pop", "metal", "jazz", "hip hop", "hip-hop", "hiphop", "rap", "electro", "electronic", "electronica",
    "techno", "house", "trance", "dance", "disco", "funk", "soul", "r&b", "rnb", "blues", "country", "folk",
    "punk", "indie", "alternative", "grunge", "emo", "core", "ambient", "classical", "reggae", "ska", "dub",
    "gothic", "goth", "industrial", "new wave", "wave", "synth", "psychedelic", "progressive", "prog",
    "hardcore", "post-", "shoegaze", "britpop", "j-pop", "k-pop", "jpop", "kpop", "visual kei", "latin",
    "salsa", "bossa", "samba", "tango", "flamenco", "world", "soundtrack", "score", "opera", "gospel",
    "christian", "swing", "bluegrass", "americana", "singer-songwriter", "acoustic", "instrumental", "idm",
    "drum and bass", "dnb", "dubstep", "breakbeat", "garage", "grime", "trip-hop", "trip hop", "downtempo",
    "lounge", "chillout", "easy listening", "new age", "noise", "experimental", "avant-garde", "math",
    "stoner", "doom", "sludge", "thrash", "death", "black metal", "power", "speed", "glam", "hair", "nu ",
    "crossover", "rockabilly", "surf", "garage", "lo-fi", "lofi", "chiptune", "8-bit", "eurodance", "schlager",
    "chanson", "fado", "mpb", "forro", "sertanejo", "axe", "pagode", "bossa nova", "reggaeton", "cumbia",
    "bachata", "merengue", "afrobeat", "celtic", "medieval", "baroque", "romantic", "minimal", "crunk", "trap",
    "gangsta", "g-funk", "underground", "oldschool", "motown", "neo-soul", "big beat", "cover", "a cappella",
    "vocal", "comedy", "musical", "show tunes", "anime", "game", "video game", "orchestral", "symphonic",
    "emocore", "screamo", "metalcore", "deathcore", "grindcore", "mathcore", "post-rock", "post-punk", "powerpop",
)

PLACE_WORDS = (
    "american", "british", "english", "uk", "usa", "us", "canadian", "canada", "australian", "australia",
    "german", "germany", "deutsch", "french", "france", "francais", "italian", "italy", "spanish", "spain",
    "swedish", "sweden", "norwegian", "norway", "finnish", "finland", "danish", "denmark", "icelandic",
    "iceland", "dutch", "netherlands", "belgian", "belgium", "polish", "poland", "russian", "russia",
    "brazilian", "brazil", "brasil", "brasileiro", "mexican", "mexico", "argentina", "argentinian", "chilean",
    "colombian", "japanese", "japan", "j", "korean", "korea", "chinese", "china", "taiwanese", "indian",
    "india", "irish", "ireland", "scottish", "scotland", "welsh", "wales", "greek", "greece", "turkish",
    "turkey", "portuguese", "portugal", "austrian", "austria", "swiss", "czech", "hungarian", "romanian",
    "israeli", "african", "africa", "jamaican", "jamaica", "cuban", "latin american", "scandinavian",
    "nordic", "european", "asian", "new york", "london", "los angeles", "california", "seattle", "chicago",
    "detroit", "manchester", "berlin", "paris", "tokyo", "bristol", "texas", "nyc", "la", "southern",
    "puerto rico", "venezuela", "peru", "slovenian", "serbian", "croatian", "ukrainian", "estonian",
    "latvian", "lithuanian", "bulgarian", "new zealand", "philippines", "filipino", "thai", "indonesian",
)

MOOD_WORDS = (
    "happy", "sad", "melancholy", "melancholic", "mellow", "chill", "chillout", "relax", "relaxing", "calm",
    "dark", "angry", "aggressive", "energetic", "upbeat", "romantic", "love", "sexy", "beautiful", "dreamy",
    "atmospheric", "epic", "emotional", "depressing", "depressive", "uplifting", "fun", "funny", "party",
    "moody", "haunting", "peaceful", "soothing", "sensual", "catchy", "groovy", "heavy", "soft", "intense",
    "feel good", "feelgood", "nostalgic", "nostalgia", "lonely", "hopeful", "joyful", "cheerful", "gloomy",
    "sentimental", "ethereal", "hypnotic", "trippy", "smooth", "powerful", "brutal", "raw", "quiet", "loud",
    "sweet", "cute", "cool", "amazing", "awesome", "melodic", "dramatic", "passionate", "tender", "warm",
)

DEFAULT_ORDER = ("genre", "decade", "place", "mood", "other")

_WORD_SETS = {
    "place": frozenset(PLACE_WORDS),
    "mood": frozenset(MOOD_WORDS),
}


class TagCategorizer:
    """Assign a category to a free-form tag.

    Parameters
    ----------
    extra:
        ``{category: [word or "re:pattern", ...]}`` checked before the defaults.
    order:
        Category order used in TEMPLATE texts.
    """

    def __init__(self, extra: Mapping[str, Sequence[str]] | None = None,
                 order: Sequence[str] = DEFAULT_ORDER) -> None:
        self.extra = {k: list(v) for k, v in (extra or {}).items()}
        self.order = tuple(order)
        self._extra_rules = [(cat, re.compile(w[3:]) if w.startswith("re:") else w.lower())
                             for cat, words in self.extra.items() for w in words]

    def __call__(self, tag: str) -> str:
        t = str(tag).lower().strip()
        for cat, rule in self._extra_rules:
            if (isinstance(rule, str) and t == rule) or (not isinstance(rule, str) and rule.search(t)):
                return cat
        if DECADE_RE.match(t):
            return "decade"
        if t in _WORD_SETS["place"] or (t.split(" ")[0] in _WORD_SETS["place"] and len(t.split(" ")) == 1):
            return "place"
        if t in _WORD_SETS["mood"]:
            return "mood"
        if any(w in t for w in GENRE_WORDS):
            return "genre"
        return "other"
