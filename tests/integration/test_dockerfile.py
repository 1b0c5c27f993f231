"""The Dockerfile and requirements.lock match the code: Docker cannot run here, so the files are
checked by reading them (and by running what can run without Docker: the entrypoint script).

The image must be built in stages (a builder, then a runtime that copies what it built), on a
base pinned to an exact version (and digest), run as a fixed non-root uid that owns every
directory a volume is mounted on, expose both programs' default ports and the metrics ports
compose gives them, check its health with the shipped `grpc-health-probe` on the engine's
default port, and install its dependencies from the lock alone, with `--require-hashes`. The
lock must pin every runtime dependency of pyproject.toml, with hashes, at versions its
specifiers admit. tests/integration/test_wheel.py builds the wheel from what the builder copies.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from engine_service.entrypoints import server as engine_server
from service_common.health_probe import main as probe
from vdsm_agent.entrypoints import server as agent_server

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# An image reference pinned to an exact release: NAME:X.Y.Z[-variant][@sha256:DIGEST].
PINNED = re.compile(
    r"^(?P<name>[\w./-]+):(?P<version>\d+\.\d+\.\d+)(?P<variant>-[\w.-]+)?"
    r"(?:@sha256:(?P<digest>[0-9a-f]{64}))?$"
)


@dataclasses.dataclass
class Instruction:
    keyword: str  # upper case
    args: str  # the rest of the line, continuations joined


@dataclasses.dataclass
class Stage:
    image: str  # ARGs of the global scope substituted
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions: comments dropped, `\\` continuations joined."""
    found, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        found.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def stages(text: str) -> list[Stage]:
    """The build stages, each FROM's image with the global ARGs' defaults substituted."""
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "ARG" and not result:
            name, _, default = instruction.args.partition("=")
            global_args[name] = default
        elif instruction.keyword == "FROM":
            words = instruction.args.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], words[0])
            named = len(words) == 3 and words[1].upper() == "AS"
            result.append(Stage(image, words[2] if named else None, []))
        else:
            assert result or instruction.keyword == "ARG", f"{instruction} before any FROM"
            if result:
                result[-1].instructions.append(instruction)
    return result


def exec_form(instruction: Instruction) -> list[str]:
    """A JSON-array (exec form) argument; the shell form would need a shell as PID 1."""
    value = json.loads(instruction.args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), instruction
    return value


@pytest.fixture(scope="module")
def build() -> list[Stage]:
    return stages((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final(build: list[Stage]) -> Stage:
    return build[-1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def defaults() -> tuple[engine_server.Config, agent_server.Config]:
    """Both programs' settings with nothing given: their built-in defaults."""
    for key in list(os.environ):
        assert not key.startswith((engine_server.ENV_PREFIX, agent_server.ENV_PREFIX)), key
    return engine_server.parse_args([]), agent_server.parse_args([])


def port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def ours(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if s.get("build") == "."}


# -- stages and base -----------------------------------------------------------------------------


def test_a_builder_stage_and_a_runtime_stage_that_copies_from_it(build: list[Stage]) -> None:
    assert len(build) >= 2, "a multi-stage build: the runtime stage leaves the build tools behind"
    names = {s.name for s in build[:-1]}
    copied = [i for i in build[-1].all("COPY") if i.args.startswith("--from=")]
    assert copied and {i.args.split()[0].removeprefix("--from=") for i in copied} <= names
    assert not [i for i in build[-1].all("RUN") if "pip " in i.args], "pip runs in the builder"


def test_the_base_image_is_pinned_to_an_exact_release(build: list[Stage]) -> None:
    names = set()
    for stage in build:
        if stage.image in names:  # FROM an earlier stage
            continue
        pinned = PINNED.match(stage.image)
        assert pinned, f"{stage.image}: pin an exact version (X.Y.Z) and preferably a digest"
        if stage.name:
            names.add(stage.name)
        if pinned["name"] in ("python", "docker.io/library/python"):
            major_minor = tuple(int(v) for v in pinned["version"].split(".")[:2])
            floor = PYPROJECT["project"]["requires-python"].removeprefix(">=")
            assert major_minor >= tuple(int(v) for v in floor.split(".")), stage.image
            # The lock is resolved for this Python (Makefile's `make lock`).
            make = (ROOT / "Makefile").read_text()
            assert f"--python-version {'.'.join(map(str, major_minor))}" in make


# -- user and volumes ----------------------------------------------------------------------------


def runtime_uid(final: Stage) -> tuple[int, int]:
    users = final.all("USER")
    assert users, "the runtime stage must set a USER (else it runs as root)"
    user, _, group = users[-1].args.partition(":")
    # Numeric: Kubernetes' runAsNonRoot can only check a number.
    assert user.isdigit() and group.isdigit(), f"USER {users[-1].args}: use uid:gid"
    return int(user), int(group)


def owned_directories(final: Stage, uid: int, gid: int) -> set[str]:
    """The directories the runtime stage creates with `install -d -o UID -g GID`."""
    found: set[str] = set()
    for run in final.all("RUN"):
        for command in re.split(r"&&|;", run.args):
            words = shlex.split(command)
            if words[:2] == ["install", "-d"]:
                options = dict(zip(words[2::2], words[3::2], strict=False))
                if options.get("-o") == str(uid) and options.get("-g") == str(gid):
                    found |= {w for w in words[2:] if w.startswith("/")}
    return found


def test_the_runtime_runs_as_a_fixed_non_root_user(final: Stage) -> None:
    uid, gid = runtime_uid(final)
    assert uid != 0 and gid != 0, "the image must not run as root"
    runs = " ".join(i.args for i in final.all("RUN"))
    assert f"--uid {uid}" in runs and f"--gid {gid}" in runs, "create the user with that uid"


def test_every_volume_and_default_directory_is_owned_by_that_user(
    final: Stage, compose: dict
) -> None:
    """A new named volume takes the owner of the image's directory it is mounted on: without
    that directory, owned by the user, the volume is root's and the programs cannot write."""
    owned = owned_directories(final, *runtime_uid(final))
    targets = {v.split(":")[1] for s in ours(compose).values() for v in s.get("volumes", [])}
    assert targets, "compose mounts no volume on our services?"
    engine, agent = defaults()
    paths = targets | {str(engine.state_dir), str(agent.state_dir), str(agent.storage_root)}
    missing = sorted(paths - owned)
    assert not missing, f"create these in the image, owned by the runtime user: {missing}"


# -- ports, health, entrypoint -------------------------------------------------------------------


def test_expose_covers_both_programs_ports(final: Stage, compose: dict) -> None:
    exposed = {int(p.split("/")[0]) for i in final.all("EXPOSE") for p in i.args.split()}
    engine, agent = defaults()
    assert {port(engine.listen), port(agent.listen)} <= exposed
    # The metrics ports compose gives them (--metrics-listen is off by default).
    metrics = set()
    for service in ours(compose).values():
        command = service["command"]
        if "--metrics-listen" in command:
            metrics.add(port(command[command.index("--metrics-listen") + 1]))
    assert metrics and metrics <= exposed, (metrics, exposed)


def test_the_health_check_probes_the_default_engine(
    final: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    (check,) = final.all("HEALTHCHECK")
    options, _, command = check.args.partition("CMD ")
    assert options.split() and all(o.startswith("--") for o in options.split())
    test = exec_form(Instruction("CMD", command))
    scripts = PYPROJECT["project"]["scripts"]
    assert test[0] == "grpc-health-probe" and test[0] in scripts
    engine, _ = defaults()
    assert test[1] == f"127.0.0.1:{port(engine.listen)}", "the engine's default address"
    # Liveness: readiness would mark a healthy standby unhealthy, and Swarm would restart it.
    assert "--service" not in test
    with pytest.raises(SystemExit) as exit_status:  # the real probe parses its arguments
        probe(["127.0.0.1:1", "--timeout", "0.2", *test[2:]])
    assert exit_status.value.code == 2 and "UNAVAILABLE" in capsys.readouterr().err


def test_every_service_replaces_or_disables_the_image_health_check(compose: dict) -> None:
    """The image's HEALTHCHECK fits its default command alone (an engine on its default
    address): every service of the image says its own, or disables it (the one-shot pki)."""
    for name, service in ours(compose).items():
        check = service.get("healthcheck", {})
        assert "test" in check or check.get("disable") is True, name


def entrypoint_script(final: Stage) -> Path:
    (entrypoint,) = final.all("ENTRYPOINT")
    program = exec_form(entrypoint)
    for copy in final.all("COPY"):
        *_, source, target = copy.args.split()
        if target in (program[0], f"/usr/local/bin/{program[0]}"):
            assert "--chmod=0755" in copy.args or os.access(ROOT / source, os.X_OK)
            return ROOT / source
    raise AssertionError(f"{program}: the runtime stage copies no such entrypoint")


def test_the_entrypoint_runs_every_program_compose_names(final: Stage, compose: dict) -> None:
    script = entrypoint_script(final)
    (cmd,) = final.all("CMD")
    assert exec_form(cmd) == ["engine-service"], "the default program"
    programs = {s["command"][0] for s in ours(compose).values()} | {"grpc-health-probe"}
    assert programs <= set(PYPROJECT["project"]["scripts"])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for argv in [[p, "--help"] for p in sorted(programs)] + [["--help"]]:
        ran = subprocess.run(
            ["sh", str(script), *argv], env=env, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, (argv, ran.stderr)
        program = argv[0] if argv[0] != "--help" else "engine-service"  # an option: the engine
        assert program in ran.stdout.splitlines()[0], (argv, ran.stdout[:200])


# -- the lock ------------------------------------------------------------------------------------


def locked() -> dict[str, tuple[Requirement, list[str]]]:
    """requirements.lock's requirements by name, each with its hashes."""
    text = (ROOT / "requirements.lock").read_text().replace("\\\n", " ")
    found: dict[str, tuple[Requirement, list[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        words = re.split(r"\s+--hash=", line)
        requirement = Requirement(words[0])
        found[canonicalize_name(requirement.name)] = (requirement, words[1:])
    return found


def test_pip_installs_from_the_lock_with_hashes_and_nothing_else(build: list[Stage]) -> None:
    builder = build[0]
    copies = " ".join(i.args for i in builder.all("COPY"))
    assert "requirements.lock" in copies.split()
    installs = [i.args for i in builder.all("RUN") if "pip install" in i.args]
    from_lock = [a for a in installs if "-r requirements.lock" in a]
    assert from_lock, "the builder installs the dependencies from requirements.lock"
    assert all("--require-hashes" in a and "--no-deps" in a for a in from_lock)
    # Everything else pip installs is the project's own wheel, without its dependencies.
    assert all("--no-deps" in a for a in installs), installs


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    lock = locked()
    assert lock, "requirements.lock is empty"
    for name, (requirement, hashes) in lock.items():
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{name}: pin an exact version"
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name
    stale = []
    for dependency in map(Requirement, PYPROJECT["project"]["dependencies"]):
        name = canonicalize_name(dependency.name)
        if name in BUILT_HERE:
            continue  # test_the_client_is_built_from_this_repository
        if name not in lock:
            stale.append(f"{dependency} is not in the lock")
            continue
        version = next(iter(lock[name][0].specifier)).version
        if not dependency.specifier.contains(version, prereleases=True):
            stale.append(f"{dependency}: the lock has {version}")
        for extra in dependency.extras:  # psycopg[binary]: what the extra adds is locked too
            for needed in extra_requirements(dependency.name, extra):
                if canonicalize_name(needed.name) not in lock:
                    stale.append(f"{dependency}: {needed.name} is not in the lock")
    assert not stale, "run `make lock`: " + "; ".join(stale)


# Dependencies built from this repository (pyproject.toml's [tool.uv.sources] paths), which the
# lock leaves out: the client distribution.
BUILT_HERE = {
    canonicalize_name(name): ROOT / source["path"]
    for name, source in PYPROJECT.get("tool", {}).get("uv", {}).get("sources", {}).items()
    if "path" in source
}


def test_the_client_is_built_from_this_repository(build: list[Stage]) -> None:
    """The server depends on the client distribution: the image builds its wheel from the copy
    of clients/python, at the exact version the server asks for, and the lock pins what the
    client needs (pip installs everything with --no-deps)."""
    assert BUILT_HERE, "pyproject.toml names no dependency built from this repository"
    lock = locked()
    builder = build[0]
    copied = {w for i in builder.all("COPY") for w in i.args.split() if not w.startswith("--")}
    (wheel,) = [i.args for i in builder.all("RUN") if "pip wheel" in i.args]
    wanted = {
        canonicalize_name(Requirement(d).name): Requirement(d)
        for d in PYPROJECT["project"]["dependencies"]
    }
    for name, path in BUILT_HERE.items():
        relative = str(path.relative_to(ROOT))
        assert relative in copied and relative in wheel.split(), (name, relative, wheel)
        client = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        assert canonicalize_name(client["name"]) == name
        assert wanted[name].specifier.contains(client["version"]), (wanted[name], client)
        for dependency in map(Requirement, client["dependencies"]):
            assert canonicalize_name(dependency.name) in lock, f"{dependency}: run `make lock`"
            version = next(iter(lock[canonicalize_name(dependency.name)][0].specifier)).version
            assert dependency.specifier.contains(version), (dependency, version)


def extra_requirements(distribution: str, extra: str) -> list[Requirement]:
    requirements = [Requirement(r) for r in metadata.requires(distribution) or []]
    return [r for r in requirements if r.marker and r.marker.evaluate({"extra": extra})]


def test_the_lock_is_closed_under_dependencies() -> None:
    """pip installs with --no-deps: a dependency of a locked package missing from the lock would
    be missing from the image. Checked with the metadata of the locked versions installed
    here (the image's platform: Linux, CPython 3.11)."""
    lock = locked()
    environment = {str(k): str(v) for k, v in default_environment().items()}
    environment |= {"sys_platform": "linux", "platform_system": "Linux", "extra": ""}
    checked, missing = 0, []
    for name, (requirement, _) in lock.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != next(iter(requirement.specifier)).version:
            continue
        checked += 1
        for needed in map(Requirement, metadata.requires(name) or []):
            if needed.marker and not needed.marker.evaluate(environment):
                continue
            if canonicalize_name(needed.name) not in lock:
                missing.append(f"{name} needs {needed}")
    assert checked >= len(lock) // 2, "too few locked versions installed here to check"
    assert not missing, "run `make lock`: " + "; ".join(missing)


# -- the build context ---------------------------------------------------------------------------


def test_every_copied_source_exists_and_is_in_the_build_context(build: list[Stage]) -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    copied: set[str] = set()
    for stage in build:
        for copy in stage.all("COPY"):
            if copy.args.startswith("--from="):
                continue
            *sources, _ = [w for w in copy.args.split() if not w.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert not any(fnmatch.fnmatch(source, p) for p in ignored), source
                copied.add(source)
    assert packages <= copied, f"the builder must copy every package: {packages - copied}"
