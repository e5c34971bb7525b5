"""Silence the library messages a fit always triggers and that ask nothing of the user.

Each one is expected and harmless here: transformers' "Some weights ... are newly initialized" (the
classification head is new by design, and we train it), its "`torch_dtype` is deprecated" (said by optimum's
exporter), torch's ``TracerWarning`` during the ONNX trace, and ONNX Runtime's "Please consider (to run)
pre-processing before quantization" (advice for CNN image models; quantising only a BERT's matrix products
needs none). Printed on every fit, they hid what fit had to say. Only these are silenced, and only while the call
runs; everything else still shows.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Iterator

_ROOT_NOISE = ("Please consider to run pre-processing before quantization", "Please consider pre-processing before quantization")


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


@contextmanager
def expected_library_noise() -> Iterator[None]:
    """A ``with`` block in which the messages listed in this module's docstring are not shown."""
    root_filter = _DropMessages(_ROOT_NOISE)
    logging.getLogger().addFilter(root_filter)
    try:
        with transformers_notices(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*results are registered as constants in the trace.*")
            warnings.filterwarnings("ignore", message=r".*Converting a tensor to a Python boolean might cause the trace.*")
            yield
    finally:
        logging.getLogger().removeFilter(root_filter)


@contextmanager
def transformers_notices() -> Iterator[None]:
    """A ``with`` block in which transformers says only errors: around the one-time GGUF conversion, whose
    tokenizer load prints a long "You are using the default legacy behaviour of LlamaTokenizerFast" notice
    that, by its own words, can be ignored for a GGUF file (eco-rails announces the conversion itself)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
