"""warmpool.envtest.images: recipes, the inputs' hash that tags each image, and the manifest
that tells the node and the demo which archive holds which image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from warmpool.envtest import images as catalog

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the recipes and the files the images are built from."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "images", copy / "images")
    shutil.copy2(REPO / "pyproject.toml", copy / "pyproject.toml")
    shutil.copy2(REPO / "README.md", copy / "README.md")
    source = copy / "operator/warmpool"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("")
    return copy


def test_every_node_image_has_a_recipe_chain() -> None:
    recipes = catalog.load_recipes(REPO)
    for name in catalog.IMAGE_NAMES:
        bottom = catalog.chain(recipes, name)[0]
        assert bottom.parent in (catalog.SCRATCH, catalog.DEBOOTSTRAP)
    assert catalog.chain(recipes, "agent")[0].name == catalog.chain(recipes, "triton-cpu")[0].name
    # The agent and the operator run the same venv: one layer, built once, two configs.
    assert catalog.layer_hash(recipes, "agent", REPO) == catalog.layer_hash(
        recipes, "operator", REPO
    )
    assert catalog.image_hash(recipes, "agent", REPO) != catalog.image_hash(
        recipes, "operator", REPO
    )


def test_hash_follows_the_inputs_and_the_parent(repo: Path) -> None:
    recipes = {n: r for n, r in catalog.load_recipes(repo).items() if not r.host_files}
    before = {name: catalog.layer_hash(recipes, name, repo) for name in recipes}
    (repo / "operator/warmpool/__init__.py").write_text("VERSION = 2\n")
    after_code = {name: catalog.layer_hash(recipes, name, repo) for name in recipes}
    assert after_code["agent"] != before["agent"]
    assert after_code["operator"] != before["operator"]
    assert after_code["triton-cpu"] == before["triton-cpu"]  # not built from the code
    assert after_code["base"] == before["base"]  # a code change rebuilds no base
    assert after_code["python-deps"] == before["python-deps"]  # nor the dependencies
    base = repo / "images/base/recipe.toml"
    base.write_text(base.read_text().replace('"ca-certificates"', '"ca-certificates", "curl"'))
    recipes = {n: r for n, r in catalog.load_recipes(repo).items() if not r.host_files}
    after_base = {name: catalog.layer_hash(recipes, name, repo) for name in recipes}
    assert after_base["triton-cpu"] != after_code["triton-cpu"]  # the parent changed
    assert after_base["pause"] == after_code["pause"]


def test_built_image_refuses_a_missing_or_stale_image(repo: Path, tmp_path: Path) -> None:
    directory = tmp_path / "images"
    with pytest.raises(catalog.ImagesNotBuiltError, match="not built"):
        catalog.built_image("pause", directory=directory, repo=repo)
    recipes = catalog.load_recipes(repo)
    inputs = catalog.image_hash(recipes, "pause", repo)
    archive = directory / "pause.oci.tar"
    directory.mkdir()
    archive.write_bytes(b"archive")
    image = catalog.BuiltImage(
        name="pause",
        ref=catalog.reference(recipes["pause"], inputs),
        archive=archive,
        inputs=inputs,
        size=7,
    )
    catalog.write_manifest({"pause": image}, directory)
    assert catalog.built_image("pause", directory=directory, repo=repo) == image
    assert image.ref == f"localhost/warmpool/pause:{inputs[:16]}"
    (repo / "images/pause/pause.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(catalog.ImagesNotBuiltError, match="older than its inputs"):
        catalog.built_image("pause", directory=directory, repo=repo)


def test_a_bad_recipe_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "broken" / "recipe.toml"
    path.parent.mkdir()
    path.write_text('from = "base"\nrepository = "x"\n[config]\nuser = "1"\nentrypoint = "sh"\n')
    with pytest.raises(ValueError, match="entrypoint must be a list of strings"):
        catalog.load_recipe(path)
