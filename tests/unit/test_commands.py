"""Each command type's hooks (docs/design.md §4): validation against the real state with a
precise error and nothing written, the children it builds, what it locks and creates, and its
rebuilding from a record after a restart."""

from __future__ import annotations

import pytest

from engine_service.domain.inventory import DiskStatus, EntityKind, Template, TemplateStatus
from engine_service.domain.tasks import Verb, new_id
from engine_service.service_layer.commands.add_disk import AddDisk
from engine_service.service_layer.commands.add_vm_template import AddVmTemplate
from engine_service.service_layer.commands.base import CommandBase
from service_common.errors import AlreadyExists, FailedPrecondition, NotFound
from tests.unit.world import World


def world(disks: int = 2) -> tuple[World, str, str]:
    """One UP host, a domain and a VM with `disks` OK disks; returns (world, vm id, domain)."""
    w = World()
    w.host()
    sd = w.domain()
    vm = w.vm(*(w.disk(sd, f"d{i}") for i in range(disks)))
    return w, vm.vm_id, sd


def refused_without_a_trace(w: World) -> bool:
    return w.uow.commits == 0 and w.store.commands == {} and w.agents.calls == []


def test_add_disk_on_an_unknown_domain_is_not_found_naming_the_field() -> None:
    w, _, _ = world()
    missing = new_id()
    with pytest.raises(NotFound, match=f"^storage_domain_id: no storage domain {missing}$"):
        w.add_disk(missing)
    assert refused_without_a_trace(w) and len(w.store.disks) == 2


def test_add_vm_template_of_an_unknown_vm_is_not_found() -> None:
    w, _, sd = world()
    missing = new_id()
    with pytest.raises(NotFound, match=f"^vm_id: no VM {missing}$"):
        w.lifecycle.submit(lambda: AddVmTemplate.create(missing, "t", sd), None)
    assert refused_without_a_trace(w)


def test_add_vm_template_to_an_unknown_domain_is_not_found() -> None:
    w, vm_id, _ = world()
    missing = new_id()
    with pytest.raises(NotFound, match=f"^destination_storage_domain_id: .* {missing}$"):
        w.lifecycle.submit(lambda: AddVmTemplate.create(vm_id, "t", missing), None)
    assert refused_without_a_trace(w)


def test_add_vm_template_with_a_taken_name_is_already_exists() -> None:
    w, vm_id, sd = world()
    taken = Template(new_id(), "golden", vm_id, TemplateStatus.OK)
    w.store.templates[taken.template_id] = taken
    with pytest.raises(
        AlreadyExists, match=f"^name: template 'golden' exists \\({taken.template_id}"
    ):
        w.lifecycle.submit(lambda: AddVmTemplate.create(vm_id, "golden", sd), None)
    assert refused_without_a_trace(w) and list(w.store.templates) == [taken.template_id]


def test_add_vm_template_of_a_vm_without_disks_is_a_failed_precondition() -> None:
    w, vm_id, sd = world(disks=0)
    with pytest.raises(FailedPrecondition, match=f"VM {vm_id} has no disks to copy"):
        w.lifecycle.submit(lambda: AddVmTemplate.create(vm_id, "t", sd), None)
    assert refused_without_a_trace(w)


def test_add_vm_template_of_a_disk_not_ok_names_the_disk_and_its_status() -> None:
    w, vm_id, sd = world()
    second = w.store.vms[vm_id].disk_ids[1]
    w.store.disks[second].status = DiskStatus.ILLEGAL
    with pytest.raises(FailedPrecondition, match=f"disk {second} is ILLEGAL, not OK"):
        w.lifecycle.submit(lambda: AddVmTemplate.create(vm_id, "t", sd), None)
    assert refused_without_a_trace(w)
    assert w.store.disks[w.store.vms[vm_id].disk_ids[0]].status is DiskStatus.OK


def test_add_vm_template_of_a_disk_locked_by_another_command_names_the_holder() -> None:
    w, vm_id, sd = world()
    first = w.store.vms[vm_id].disk_ids[0]
    w.lock(first, "cmd-holding-it")
    with pytest.raises(FailedPrecondition, match=f"disk {first} is locked by command cmd-holding"):
        w.lifecycle.submit(lambda: AddVmTemplate.create(vm_id, "t", sd), None)
    assert refused_without_a_trace(w)


def test_a_second_template_of_the_same_vm_is_refused_while_the_first_runs() -> None:
    w, vm_id, sd = world()
    first = w.lifecycle.submit(lambda: AddVmTemplate.create(vm_id, "one", sd), None).command_id
    commits = w.uow.commits
    with pytest.raises(FailedPrecondition, match="is LOCKED, not OK"):
        w.lifecycle.submit(lambda: AddVmTemplate.create(vm_id, "two", sd), None)
    assert w.uow.commits == commits and [t.name for t in w.store.templates.values()] == ["one"]
    assert [c for c in w.store.commands.values() if c.parent_id is None] == [w.command(first)]


def test_add_vm_template_builds_one_copy_child_per_disk_in_vm_order() -> None:
    w, vm_id, sd = world(disks=3)
    command = AddVmTemplate.create(vm_id, "t", sd)
    command.validate(w.repo())
    children = command.build_child_commands()
    sources = [w.store.disks[d] for d in w.store.vms[vm_id].disk_ids]
    plans = [c.task_plan() for c in children]
    assert [p.verb if p else None for p in plans] == [Verb.COPY_IMAGE] * 3
    assert [p.args["src_image_id"] for p in plans if p] == [d.image_id for d in sources]
    assert [c.source_disk_id for c in command.params.copies] == [d.disk_id for d in sources]
    assert [p.args["dst_image_id"] for p in plans if p] == [
        c.dst_image_id for c in command.params.copies
    ]


def test_add_vm_template_locks_the_vm_and_its_source_disks() -> None:
    w, vm_id, sd = world()
    command = AddVmTemplate.create(vm_id, "t", sd)
    command.validate(w.repo())
    command.build_child_commands()
    disks = w.store.vms[vm_id].disk_ids
    assert command.entity_locks() == [(EntityKind.VM, vm_id)] + [
        (EntityKind.DISK, d) for d in disks
    ]


def test_add_vm_template_creates_locked_copies_named_after_the_template() -> None:
    w, vm_id, sd = world(disks=1)
    other = w.domain("sd2")
    command = AddVmTemplate.create(vm_id, "golden", other)
    repo = w.repo()
    command.validate(repo)
    command.build_child_commands()
    command.create_locked_entities(repo)
    [copy] = command.params.copies
    made = w.store.disks[copy.copy_disk_id]
    assert (made.name, made.storage_domain_id, made.status) == ("golden/d0", other, "LOCKED")
    assert made.image_id == copy.dst_image_id and made.size_bytes == 1024


def test_add_vm_template_params_survive_a_restart() -> None:
    w, _, sd = world()
    root = w.add_template(next(iter(w.store.vms.values())), sd, "golden")
    rebuilt = CommandBase.from_record(w.command(root))
    assert isinstance(rebuilt, AddVmTemplate)
    assert len(rebuilt.params.copies) == 2
    assert {c.copy_disk_id for c in rebuilt.params.copies} == set(
        w.store.templates[rebuilt.params.template_id].disk_ids
    )


def test_add_disk_builds_one_create_volume_child_for_its_image() -> None:
    command = AddDisk.create("d", "sd", 512)
    [child] = command.build_child_commands()
    plan = child.task_plan()
    assert plan is not None and plan.verb is Verb.CREATE_VOLUME
    assert plan.image == ("sd", command.params.image_id)
    assert plan.args["size_bytes"] == 512
    assert command.entity_locks() == [(EntityKind.DISK, command.params.disk_id)]


def test_an_unknown_action_type_cannot_be_rebuilt() -> None:
    with pytest.raises(LookupError, match="no command type 'Nope'"):
        CommandBase.type_named("Nope")


def test_params_to_json_is_what_asdict_gives_for_every_command_type() -> None:
    """`Params.to_json` skips `dataclasses.asdict`'s deep copies; the result is the same, nested
    dataclasses (a template's copies) included, and reads back as the same params."""
    from dataclasses import asdict, fields

    from engine_service.service_layer.commands.add_vm_template import (
        AddVmTemplateParams,
        TemplateCopy,
    )

    copies = tuple(TemplateCopy(new_id(), new_id(), new_id()) for _ in range(3))
    template = AddVmTemplateParams(new_id(), "tpl", new_id(), new_id(), copies)
    assert template.to_json() == asdict(template)
    assert isinstance(template.to_json()["copies"][0], dict)
    assert AddVmTemplateParams.from_json(template.to_json()) == template
    for command_type in CommandBase._types.values():
        params_type = command_type.params_type
        values = {
            f.name: 7 if f.type == "int" else () if "tuple" in str(f.type) else new_id()
            for f in fields(params_type)
        }
        params = params_type(**values)
        assert params.to_json() == asdict(params), command_type.action_type
        assert params_type.from_json(params.to_json()) == params, command_type.action_type
