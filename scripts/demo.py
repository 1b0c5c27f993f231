"""`make demo`: start a real vdsm-agent and drive a copy you can watch.

Two agents share one storage root, as two hypervisor hosts share an NFS export: host1 creates a
volume, host2 (throttled, so the copy takes a few seconds) copies it into a second storage domain
while a progress bar follows GetTaskStatus. Then host2 is killed with SIGKILL in the middle of a
second copy and restarted: the task comes back finished with a clean failure and no partial file.
Every process is stopped on exit and on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness.agent_client import RPC_TIMEOUT, task_status
from harness.processes import AgentProcess
from vdsm_agent.v1 import agent_service_pb2 as pb
from vdsm_agent.v1 import agent_service_pb2_grpc as pb_grpc
from vdsm_agent.wire import RESULT_FROM_PB, STATE_FROM_PB

MiB = 1 << 20
IMAGE_BYTES = 64 * MiB
THROTTLE = 16 * MiB
T = RPC_TIMEOUT
TTY = sys.stdout.isatty()
# VDSM's own words for the wire enums ("running", "cleanFailure").
VDSM_STATE = {wire: state.value for wire, state in STATE_FROM_PB.items()}
VDSM_RESULT = {wire: result.value for wire, result in RESULT_FROM_PB.items()}


def say(text: str = "") -> None:
    print(text, flush=True)


def bar(percent: int, width: int = 40) -> str:
    filled = width * percent // 100
    return "[" + "#" * filled + "." * (width - filled) + f"] {percent:3d}%"


def follow(
    stub: pb_grpc.AgentServiceStub, task_id: str, label: str, stop_at: int | None = None
) -> pb.TaskStatus:
    """Draw a progress bar until the task finishes (or reaches `stop_at` percent)."""
    last = -1
    while True:
        status = task_status(stub, task_id)
        state = VDSM_STATE[status.state]
        if status.progress_percent != last or status.state == pb.TASK_STATE_FINISHED:
            line = f"  {label:<10} {bar(status.progress_percent)} {state}"
            if TTY:
                print("\r" + line, end="", flush=True)
            elif (
                status.progress_percent // 10 != last // 10
                or status.state == pb.TASK_STATE_FINISHED
            ):
                say(line)
            last = status.progress_percent
        if status.state == pb.TASK_STATE_FINISHED or (
            stop_at and status.progress_percent >= stop_at
        ):
            if TTY:
                print()
            return status
        time.sleep(0.1)


def result_name(status: pb.TaskStatus) -> str:
    return VDSM_RESULT[status.result]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run(workdir: Path) -> None:
    storage = workdir / "storage"
    host1 = AgentProcess(workdir / "host1", storage_root=storage)
    host2 = AgentProcess(workdir / "host2", storage_root=storage, throttle=THROTTLE)
    agents = [host1, host2]
    try:
        say("== 1. Two host agents sharing one storage root")
        for agent in agents:
            agent.start()
            throttle = f", throttled to {agent.throttle // MiB} MiB/s" if agent.throttle else ""
            say(
                f"  {agent.workdir.name}: vdsm-agent on {agent.address}: {agent.health()}{throttle}"
            )
        s1, s2 = host1.stub(), host2.stub()

        say("\n== 2. Two storage domains (directories under the root)")
        src_sd, dst_sd = str(uuid.uuid4()), str(uuid.uuid4())
        for sd in (src_sd, dst_sd):
            s1.CreateStorageDomain(pb.CreateStorageDomainRequest(storage_domain_id=sd), timeout=T)
            say(f"  {storage / sd / 'images'}")

        say(f"\n== 3. host1 creates a {IMAGE_BYTES // MiB} MiB volume (an async task)")
        image = str(uuid.uuid4())
        task = s1.CreateVolume(
            pb.CreateVolumeRequest(
                request_id=str(uuid.uuid4()),
                storage_domain_id=src_sd,
                image_id=image,
                size_bytes=IMAGE_BYTES,
                fill_pattern=b"demo disk bytes ",
            ),
            timeout=T,
        ).task_id
        status = follow(s1, task, "create")
        say(f"  task {task}: {result_name(status)}")
        s1.ClearTask(pb.ClearTaskRequest(task_id=task), timeout=T)

        say("\n== 4. host2 copies it to the other domain; the copy is verified byte for byte")
        request = pb.CopyImageRequest(
            request_id=str(uuid.uuid4()),
            src_storage_domain_id=src_sd,
            src_image_id=image,
            dst_storage_domain_id=dst_sd,
            dst_image_id=str(uuid.uuid4()),
        )
        task = s2.CopyImage(request, timeout=T).task_id
        again = s2.CopyImage(request, timeout=T).task_id
        say(f"  task {task}; the same request sent again returns task {again}")
        status = follow(s2, task, "copy")
        src_digest = digest(storage / src_sd / "images" / image)
        dst_digest = digest(storage / dst_sd / "images" / request.dst_image_id)
        say(
            f"  {result_name(status)}: sha256 source {src_digest}, copy {dst_digest}"
            f" -> {'identical' if src_digest == dst_digest else 'DIFFERENT'}"
        )
        s2.ClearTask(pb.ClearTaskRequest(task_id=task), timeout=T)

        say("\n== 5. host2 is killed (SIGKILL) in the middle of a second copy")
        request.request_id, request.dst_image_id = str(uuid.uuid4()), str(uuid.uuid4())
        task = s2.CopyImage(request, timeout=T).task_id
        follow(s2, task, "copy", stop_at=40)
        host2.kill()
        leftovers = sorted(p.name for p in storage.rglob("*.partial"))
        say(f"  killed; partial file left on storage: {leftovers}")
        host2.start()
        status = task_status(s2, task)
        say(f"  restarted: task {task} is {result_name(status)}: {status.message}")
        say(f"  partial files now: {sorted(p.name for p in storage.rglob('*.partial'))}")
        s2.ClearTask(pb.ClearTaskRequest(task_id=task), timeout=T)

        say("\n== 6. SIGTERM: both agents stop gracefully")
        for agent in agents:
            say(f"  {agent.workdir.name} exited with status {agent.terminate()}")
    finally:
        for agent in agents:
            agent.close()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="vdsm-demo-"))
    try:
        run(workdir)
        say("\nDemo finished.")
    except KeyboardInterrupt:
        say("\nInterrupted: every process was stopped.")
        sys.exit(130)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
