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
    lines = path.read_bytes().count(b"\n")
    path.write_bytes(path.read_bytes() + b"\nnote: caf\xe9\n")
    with pytest.raises(InputError, match=rf"virtue\.yaml: line {lines + 2}, column 10: not valid UTF-8"):
        load_constitutions(assets_copy / "constitutions")


def test_yaml_syntax_error_names_file_line_and_problem(assets_copy):
    """Before: the message ended with the caret line of PyYAML's excerpt and named '<unicode string>'."""
    path = assets_copy / "constitutions" / "virtue.yaml"
    path.write_text("name: virtue\ntitle: [Virtue\nframework: virtue\n")
    with pytest.raises(InputError) as e:
        load_constitutions(assets_copy / "constitutions")
    msg = str(e.value)
    assert msg.startswith(f"{path}: line 3, column 10: invalid YAML:") and "\n" not in msg, msg


@pytest.mark.parametrize("field, value", [
    ("train.rank", 0), ("train.learning_rate", -1e-4), ("train.batch_size", 0), ("splits.leakage_threshold", 1.5),
    ("cai.critique.max_new_tokens", 0), ("eval.sampling.top_p", 0.0), ("sft.max_tokens", -5),
])  # fmt: skip
def test_profile_values_are_checked_at_load(tmp_path, field, value):
    """Before: a zero LoRA rank or a negative learning rate failed deep inside PEFT after upstream work."""
    from ealign_dagster.core.config import load_profile, profile_path

    data = yaml.safe_load(profile_path("tiny").read_text())
    node = data
    *parents, leaf = field.split(".")
    for k in parents:
        node = node[k]
    node[leaf] = value
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=rf"p\.yaml: field '{field}': "):
        load_profile(str(bad))


def test_a_remote_endpoint_without_its_key_fails_at_load(tmp_path, monkeypatch):
    from ealign_dagster.core.config import load_profile, profile_path

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = yaml.safe_load(profile_path("tiny").read_text())
    data["teacher"] = {"backend": "openai", "model": "gpt-x", "base_url": "https://api.example.com/v1"}
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=r"field 'teacher': model 'gpt-x' at https://api.example.com/v1: the "
                                         r"environment variable OPENAI_API_KEY \(api_key_env\) is not set"):  # fmt: skip
        load_profile(str(bad))
    data["teacher"]["base_url"] = "http://127.0.0.1:8000/v1"  # a local server may run without a key
    bad.write_text(yaml.safe_dump(data))
    assert load_profile(str(bad)).teacher.base_url.startswith("http://127.0.0.1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    data["teacher"]["base_url"] = "https://api.example.com/v1"
    bad.write_text(yaml.safe_dump(data))
    assert load_profile(str(bad)).teacher.model == "gpt-x"


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
