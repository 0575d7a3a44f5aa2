"""The README's code runs as written, and the documents it links to are in the repository."""

import os
import re

from conftest import ROOT

README = os.path.join(ROOT, "README.md")
PARAMETER_COUNTS = os.path.join(ROOT, "docs", "parameter_counts.md")


def _section(path: str, heading: str) -> str:
  """The text of the `## heading` section of a Markdown file."""
  text = open(path, encoding="utf-8").read()
  match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
  assert match, f"no '## {heading}' section in {path}"
  return match.group(1)


def _python_blocks(markdown: str) -> list[str]:
  return re.findall(r"^```python\n(.*?)^```", markdown, re.M | re.S)


def test_model_registry_snippet_runs_as_written():
  blocks = _python_blocks(_section(README, "Model registry"))
  assert len(blocks) == 1, blocks
  namespace = {"__name__": "readme_model_registry"}
  exec(compile(blocks[0], "README.md (Model registry)", "exec"), namespace)
  # What the snippet's comments promise.
  batch = namespace["images"].shape[0]
  spec, model = namespace["spec"], namespace["model"]
  assert namespace["images"].shape == (batch, spec.input_size, spec.input_size, 3)
  assert namespace["logits"].shape == (batch, model.num_classes)
  assert set(namespace["variables"]) == {"params", "batch_stats"}
  assert set(namespace["state"]["intermediates"]) >= {"stem", "stage1", "head"}
  assert namespace["features"].shape[0] == batch


def test_relative_links_stay_inside_the_repository():
  for path in (README, PARAMETER_COUNTS):
    text = open(path, encoding="utf-8").read()
    for target in re.findall(r"\]\(([^)#\s]+)", text):
      if re.match(r"[a-z]+:", target):  # http(s): and other URLs
        continue
      resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
      assert resolved.startswith(ROOT + os.sep) and os.path.exists(resolved), (path, target)
    assert "../" not in text, path


def _documented_counts() -> dict:
  """(registry name, setting) -> params, from the tables of docs/parameter_counts.md."""
  rows = {}
  for line in open(PARAMETER_COUNTS, encoding="utf-8"):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 4 and cells[0].startswith("`") and cells[2].replace(",", "").isdigit():
      key = (cells[0].strip("`"), cells[1].strip("`"))
      assert key not in rows, f"{key} listed twice"
      rows[key] = int(cells[2].replace(",", ""))
  return rows


def test_parameter_counts_page_lists_what_the_model_tests_check():
  import test_models_classic as classic
  import test_models_densenet as densenet
  import test_models_efficientnet as efficientnet
  import test_models_inception as inception
  import test_models_mobilenet as mobilenet
  import test_models_resnet as resnet

  checked = {}
  for counts in (classic.CLASSIC_PARAMS, classic.PLAIN_PARAMS, resnet.RESNET_PARAMS,
                 inception.INCEPTION_PARAMS, mobilenet.MOBILENET_PARAMS,
                 densenet.DENSENET_PARAMS, efficientnet.EFFICIENTNET_PARAMS):
    checked.update({(name, ""): n for name, n in counts.items()})
  checked.update({(name, "aux_logits=True"): n
                  for name, n in inception.WITH_AUX_PARAMS.items()})
  checked[("inception_v2", "")] = inception.INCEPTION_V2_PARAMS
  for width, n in mobilenet.MOBILENET_V1_PARAMS.items():
    checked[("mobilenet_v1", "" if width == 1.0 else f"width_multiplier={width}")] = n
  for depth in (18, 34):  # option A on the ImageNet ResNets: the plain nets' count
    checked[(f"resnet{depth}", 'shortcut="zero_pad"')] = classic.PLAIN_PARAMS[f"plain{depth}"]
  for depth, n in resnet.CIFAR_RESNET_PARAMS.items():
    checked[(f"resnet{depth}", "num_classes=10")] = checked[(f"plain{depth}",
                                                             "num_classes=10")] = n
  assert _documented_counts() == checked
