"""The configured default OpenAI model must be one OpenAI still serves.

Sources of the shut-down list, read at test time where they can be:
* the pinned SDK's own `openai/types/image_model.py`, whose docstring lists "Deprecated values" with the
  date each was shut down or retired (gpt-image-1 on 2026-10-23; dall-e-2 and dall-e-3 on 2026-05-12);
* OpenAI's deprecations page (https://platform.openai.com/docs/deprecations), which lists
  gpt-image-1-mini, gpt-image-1.5 and chatgpt-image-latest as shut down on 2026-12-01 (replacement:
  gpt-image-2.6-sunburst or gpt-image-2.6-flare). The SDK does not say so yet, so they are written here.
"""

import ast
import re
from pathlib import Path

import openai

from pixyproxy.settings import Settings

FROM_THE_DEPRECATIONS_PAGE = {"gpt-image-1-mini", "gpt-image-1.5", "chatgpt-image-latest"}


def shut_down_in_the_sdk() -> set[str]:
    """Model names the SDK's image_model.py documents as shut down or retired."""
    source = Path(openai.__file__).parent / "types" / "image_model.py"
    tree = ast.parse(source.read_text())
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    names: set[str] = set()
    for text in strings:
        for line in text.split("\n- "):
            if re.search(r"\b(shut down|retired)\b", line):
                names.update(re.findall(r'"([a-z0-9.\-]+)"', line.split(":", 1)[0]))
    return names


def test_the_sdk_documents_the_shut_down_models_this_test_relies_on():
    # If the SDK's wording changes, this fails rather than letting the check below pass on an empty list.
    assert {"gpt-image-1", "dall-e-2", "dall-e-3"} <= shut_down_in_the_sdk()


def test_the_default_model_is_not_shut_down():
    default = Settings.model_fields["openai_model"].default
    assert default not in shut_down_in_the_sdk() | FROM_THE_DEPRECATIONS_PAGE
    assert default == "gpt-image-2.6-sunburst"  # the default the pinned SDK gives its own image tool


def test_the_fake_openai_server_refuses_every_shut_down_model():
    from tests.support.fake_openai import SHUT_DOWN

    assert shut_down_in_the_sdk() | FROM_THE_DEPRECATIONS_PAGE <= set(SHUT_DOWN)
