"""Class names that diffusers looks up in `transformers` survive transformers' own module swap.

A pipeline saved under transformers 5 records its processor as `CLIPImageProcessorPil`, a name
transformers 4.x lacks; `im2wav.clip_encoder.name_in_transformers` gives it before loading. The
first import of `transformers.processing_utils` replaces `sys.modules["transformers"]` (4.x and
5.x both), and diffusers causes that import while loading whichever transformers component comes
first, in an order set by `PYTHONHASHSEED`: a name given to the module before then was lost and
loading failed for some hash seeds. These tests recreate that first import on any version.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import python_env


# transformers 5 imports processing_utils along with the CLIP classes, 4.x does not: forgetting the
# module gives both the state of a 4.x process, where the next import runs it (and swaps the package).
FIRST_IMPORT_STATE = 'sys.modules.pop("transformers.processing_utils", None)'


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env(), timeout=300)


def test_a_name_given_to_transformers_survives_the_first_import_of_processing_utils():
    result = run_python(f"""
import importlib, sys
import transformers
from im2wav.clip_encoder import name_in_transformers
{FIRST_IMPORT_STATE}
before = sys.modules["transformers"]

class Probe:
    pass

name_in_transformers("Im2WavProbe", Probe)
# diffusers, loading a transformers component: `getattr(transformers, "ProcessorMixin")` imports this
importlib.import_module("transformers.processing_utils")
library = importlib.import_module("transformers")  # what diffusers then looks the class names up in
assert library is not before, "the first import of processing_utils no longer swaps the module"
assert getattr(library, "Im2WavProbe", None) is Probe, "the name was lost with the swapped module"
print("ok")
""")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_name_pil_processor_makes_the_transformers_5_name_resolve_to_the_pil_processor():
    result = run_python(f"""
import importlib, sys
from im2wav.clip_encoder import CLIPImageProcessor, name_pil_processor
{FIRST_IMPORT_STATE}
name_pil_processor()
importlib.import_module("transformers.processing_utils")
assert importlib.import_module("transformers").CLIPImageProcessorPil is CLIPImageProcessor
print("ok")
""")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
