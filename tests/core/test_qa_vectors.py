"""Query-vector inputs checked where they come in, naming the field: an empty ``items`` list is
"need at least one item" (it was an error about ``weights``), ``alpha`` must be a number (a
string raised a raw TypeError), and item weights must be one finite number per item, not all 0
(a list of the wrong length was stretched by broadcasting; NaN failed later as an empty query)."""
from __future__ import annotations

import numpy as np
import pytest
from tiny_data import copy_space

from talkrec import Space
from talkrec.errors import InputError


@pytest.fixture(scope="module")
def space(tiny_space_dir, tmp_path_factory):
    s = Space.load(copy_space(tiny_space_dir, tmp_path_factory.mktemp("vec") / "space"))
    yield s
    s.close()


def test_an_empty_item_list_names_items(space):
    with pytest.raises(InputError, match="at least one item") as e:
        space.personalized_search("jazz", items=[])
    assert e.value.field == "items"


@pytest.mark.parametrize("alpha", ["0.5", None, float("nan"), 1.5, True])
def test_alpha_must_be_a_number_in_0_1(space, alpha):
    with pytest.raises(InputError) as e:
        space.personalized_search("jazz", items=["jazz1"], alpha=alpha)
    assert e.value.field == "alpha"


@pytest.mark.parametrize("weights", [[1.0], [1.0, 2.0, 3.0], [1.0, float("nan")], [0.0, 0.0], ["a", "b"], 5])
def test_item_weights_are_one_finite_number_per_item(space, weights):
    with pytest.raises(InputError) as e:
        space.items_vector(["jazz1", "jazz2"], weights)
    assert e.value.field == "weights"


def test_valid_weights_and_alpha_still_work(space):
    v = space.items_vector(["jazz1", "jazz2"], [1.0, 0.5])
    assert np.isclose(np.linalg.norm(v), 1.0)
    assert np.allclose(space.items_vector(["jazz1", "jazz2"], np.array([2.0, 2.0])), space.items_vector(["jazz1", "jazz2"]),
                       atol=1e-6)
    assert space.personalized_search("jazz", items=["jazz1"], alpha=0, k=3)
    with pytest.raises(InputError, match="finite"):
        space.mixed_query_vector(text="jazz", items=["jazz1"], weights={"text": float("inf")})
