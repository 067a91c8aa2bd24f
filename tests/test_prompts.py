"""Zero-shot prompts from the index's taxonomy, and the prompt-ensemble text classifier."""

import pandas as pd
import pytest
import torch

from src.errors import ConfigError
from src.models.prompts import class_prompt_names, class_prompts, text_classifier

SHIPPED = pd.DataFrame(  # the shipped index's columns: kingdom, phylum, family only
    {
        "kingdom": ["animalia", "animalia", "animalia"],
        "phylum": ["chordata", "chordata", "mollusca"],
        "family": ["dactyloidae", "corvidae", "octopodidae"],
    }
)
FULL = SHIPPED.assign(  # a downloaded index: every rank of the hub's catalog
    **{
        "class": ["reptilia", "aves", "cephalopoda"],
        "order": ["squamata", "passeriformes", "octopoda"],
        "genus": ["anolis", "corvus", "octopus"],
        "species": ["roosevelti", "corax", "vulgaris"],
    }
)


def names(index, target, forms=("name", "taxonomy")):
    classes = sorted(index[target].unique())
    labels = [classes.index(value) for value in index[target]]
    return dict(zip(classes, class_prompt_names(index, labels, classes, target, forms)))


def test_without_rank_columns_the_class_name_alone():
    assert names(SHIPPED, "family") == {
        "corvidae": ["Corvidae"],
        "dactyloidae": ["Dactyloidae"],
        "octopodidae": ["Octopodidae"],
    }
    # the ranks above the phylum are there: the phylum gets its taxonomic string
    assert names(SHIPPED, "phylum")["chordata"] == ["Chordata", "Animalia Chordata"]


def test_with_rank_columns_the_taxonomic_string_down_to_the_target():
    assert names(FULL, "family")["dactyloidae"] == [
        "Dactyloidae",
        "Animalia Chordata Reptilia Squamata Dactyloidae",
    ]
    assert names(FULL, "species")["corax"] == [
        "Corvus corax",
        "Animalia Chordata Aves Passeriformes Corvidae Corvus corax",
    ]
    assert names(FULL, "species", ["taxonomy"])["vulgaris"] == [
        "Animalia Mollusca Cephalopoda Octopoda Octopodidae Octopus vulgaris"
    ]
    with_sci = FULL.assign(sciName=["Anolis roosevelti", "Corvus corax", "Octopus vulgaris"])
    assert names(with_sci, "species", ["name"])["roosevelti"] == ["Anolis roosevelti"]


def test_every_template_with_every_name_and_bad_templates_refused():
    prompts = class_prompts([["Corvidae", "Animalia Chordata Corvidae"]], ["a photo of {name}."])
    assert prompts == [["a photo of Corvidae.", "a photo of Animalia Chordata Corvidae."]]
    two = class_prompts([["Corvidae"]], ["a photo of {name}.", "a close-up photo of {name}."])
    assert two == [["a photo of Corvidae.", "a close-up photo of Corvidae."]]
    with pytest.raises(ConfigError, match="prompts.templates"):
        class_prompts([["Corvidae"]], ["a photo of a bird"])
    with pytest.raises(ConfigError, match="prompts.names"):
        names(SHIPPED, "family", ["latin"])


class FixedText(torch.nn.Module):
    """encode_text returns a known vector per prompt (its token id picks a row)."""

    def __init__(self, vectors):
        super().__init__()
        self.vectors = torch.tensor(vectors, dtype=torch.float32)

    def encode_text(self, tokens):
        return self.vectors[tokens]


def test_a_class_embedding_is_the_mean_of_its_normalised_prompt_embeddings():
    vectors = [[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    lookup = {"a": 0, "b": 1, "c": 2}

    def tokenizer(texts):
        return torch.tensor([lookup[t] for t in texts])

    text = text_classifier(FixedText(vectors), tokenizer, [["a", "b"], ["c"]], batch_size=2)
    expected = torch.nn.functional.normalize(torch.tensor([[0.5, 0.5], [1.0, 1.0]]), dim=-1)
    torch.testing.assert_close(text, expected)
