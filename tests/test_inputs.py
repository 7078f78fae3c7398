import pytest
import yaml

from ealign_dagster.core.config import PROFILE_NAMES, Profile, load_profile
from ealign_dagster.core.schemas import FRAMEWORKS, InputError, load_constitution, load_constitutions, load_taxonomy


def test_constitutions_cover_the_four_theories():
    cons = load_constitutions()
    assert set(cons) == {"deontology", "consequentialism", "virtue", "subordinate"}
    assert {c.framework for c in cons.values()} == set(FRAMEWORKS)
    for c in cons.values():
        assert len(c.principles) >= 8 and len(c.few_shot) >= 2
    # principles are written per theory, not shared
    texts = [p.critique for c in cons.values() for p in c.principles]
    assert len(set(texts)) == len(texts)


def test_taxonomy_scopes_and_held_out_map():
    t = load_taxonomy()
    assert "copyright" not in t.categories and len(t.categories) == 6
    assert t.held_out("narrow_harassment") == "chemical_biological"
    assert t.held_out("narrow_illegal") == "misinformation_disinformation"
    assert t.held_out("broad") is None
    assert t.category_role("narrow_illegal", "illegal") == "trained"
    assert t.category_role("narrow_illegal", "misinformation_disinformation") == "held_out"
    assert t.category_role("narrow_illegal", "harmful") == "other"


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_constitution_missing_field_names_file_and_field(assets_copy):
    path = assets_copy / "constitutions" / "virtue.yaml"
    data = yaml.safe_load(path.read_text())
    del data["principles"][3]["revision"]
    _write(path, data)
    with pytest.raises(InputError) as e:
        load_constitution(path)
    assert "virtue.yaml" in str(e.value) and "principles.3.revision" in str(e.value)


def test_constitution_too_few_principles_and_wrong_name(assets_copy):
    path = assets_copy / "constitutions" / "deontology.yaml"
    data = yaml.safe_load(path.read_text())
    short = dict(data, principles=data["principles"][:3])
    with pytest.raises(InputError, match="field 'principles'"):
        load_constitution(_write(path, short))
    renamed = assets_copy / "constitutions" / "care.yaml"
    with pytest.raises(InputError, match="must equal the file name 'care'"):
        load_constitution(_write(renamed, data))


def test_non_utf8_file_is_named(assets_copy):
    path = assets_copy / "constitutions" / "virtue.yaml"
    path.write_bytes(path.read_bytes() + b"\nnote: caf\xe9\n")
    with pytest.raises(InputError, match=r"virtue\.yaml: not valid UTF-8"):
        load_constitutions(assets_copy / "constitutions")


def test_taxonomy_unknown_category_is_named(assets_copy):
    path = assets_copy / "taxonomy.yaml"
    data = yaml.safe_load(path.read_text())
    data["scopes"]["narrow_illegal"]["held_out"] = "misinformation"
    _write(path, data)
    with pytest.raises(
        InputError, match=r"taxonomy\.yaml: .*scopes\.narrow_illegal\.held_out: unknown category 'misinformation'"
    ):
        load_taxonomy(path)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_validate(name):
    assert load_profile(name).name == name


def test_demo_profile_is_the_config_default():
    """The dg.Config defaults mirror demo.yaml, so a Launchpad run and `ealign run` agree."""
    assert (
        load_profile("demo").model_dump()
        == Profile(name="demo", description=load_profile("demo").description).model_dump()
    )


def test_profile_typo_is_named(assets_copy):
    path = assets_copy / "profiles" / "tiny.yaml"
    data = yaml.safe_load(path.read_text())
    data["splits"]["leakage_treshold"] = 0.5
    _write(path, data)
    with pytest.raises(InputError, match=r"tiny\.yaml: field 'splits\.leakage_treshold'"):
        load_profile("tiny")


def test_a_profile_whose_selector_judge_grades_the_evaluation_is_refused(tmp_path):
    """CAI's acceptance judge and the primary evaluation judge must differ: adapters selected by a judge
    and scored by it are optimised for their own grader."""
    import yaml

    from ealign_dagster.core.config import load_profile, profile_path

    data = yaml.safe_load(profile_path("demo").read_text())
    assert data["cai"]["judge"] != data["eval"]["primary_judge"]
    data["cai"]["judge"] = data["eval"]["primary_judge"]
    bad = tmp_path / "same.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as e:
        load_profile(str(bad))
    assert str(e.value).startswith(f"{bad}: cai.judge and eval.primary_judge are both") and "\n" not in str(e.value)
