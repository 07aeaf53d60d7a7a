from __future__ import annotations

from talkrec.data.normalize import normalize_name
from talkrec.descriptions import TagCategorizer, TemplateDescriber


def test_template_orders_categories_and_tags(tiny_catalog):
    d = TemplateDescriber().describe(tiny_catalog)
    assert d["metal3"] == ("The name of this artist is Metal Band 3 and is described by the following tags: "
                           "Genre: metal. Other: band.")


def test_movie_header_and_missing_values():
    d = TemplateDescriber(header="movie", categories=["genre", "tag"], only_listed=True,
                          labels={"genre": "Genres", "tag": "Tags"})
    txt = d.describe_one({"name": "Toy Story", "year": 1995}, {"genre": ["animation"], "tag": ["pixar"], "x": ["y"]})
    assert txt == "Movie: Toy Story. Year: 1995. Genres: animation. Tags: pixar."
    assert d.describe_one({"name": "Babylon 5", "year": None}, {}) == "Movie: Babylon 5. Year: unknown."


def test_max_per_category():
    d = TemplateDescriber(max_per_category=2)
    assert d.describe_one({"name": "X"}, {"genre": ["a", "b", "c"]}).endswith("Genre: a, b.")


def test_categorizer_defaults_and_overrides():
    c = TagCategorizer()
    assert c("80s") == "decade" and c("1990s") == "decade" and c("nineties") == "decade"
    assert c("thrash metal") == "genre" and c("brazilian") == "place" and c("melancholic") == "mood"
    assert c("seen live") == "other"
    assert TagCategorizer({"vocals": ["female vocalists", "re:.*vocal.*"]})("female vocalists") == "vocals"


def test_normalize_name_rules():
    assert normalize_name("The Killers") == "killers"
    assert normalize_name("Simon & Garfunkel") == normalize_name("simon and garfunkel")
    assert normalize_name("Sigur Rós") == "sigur ros"
    assert normalize_name("Britney Spears\ue000") == "britney spears"
    assert normalize_name("!!!") == ""
