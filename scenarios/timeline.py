"""Timeline actions: what a scenario can do to the running world, at the second it names or
once the run has come so far (a share of the payment table settled).

Each action is registered by name with `@action`, as the codec registers message versions;
the scenario file's allowed actions are the registry's names, so an action cannot be written
in a file before it is written here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from banks.behaviour import Behaviour
from banks.config_types import LabParticipantBic
from banks.treasury import MAX_RUN_S
from lab import postgres
from lab.world import World
from scenarios.named import Registry

MAX_NOTE_CHARS = 500
MAX_DELAY_S = 3_600.0
Handler = Callable[[World, "Event"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    perform: Handler
    needs_participant: bool


ACTIONS: Registry[Action] = Registry("timeline action")


def action(name: str, *, needs_participant: bool = False) -> Callable[[Handler], Handler]:
    """Register a timeline action under `name`; raises ValueError if the name is taken."""
    def register(perform: Handler) -> Handler:
        ACTIONS.add(name, Action(name, perform, needs_participant))
        return perform
    return register


@action("sign_off", needs_participant=True)
async def sign_off(world: World, event: Event) -> None:
    """The participant is signed off at the switch (maintenance): refused at once, AB08."""
    await world.switch_admin("POST", f"/v1/admin/participants/{event.participant}/sign-off")


@action("sign_on", needs_participant=True)
async def sign_on(world: World, event: Event) -> None:
    await world.switch_admin("POST", f"/v1/admin/participants/{event.participant}/sign-on")


@action("kill_switch")
async def kill_switch(world: World, event: Event) -> None:
    """SIGKILL of the switch process (needs `switch: {process: true}`): of every one, or of
    the one `switch_process` names while the others keep serving."""
    await world.kill_switch(event.switch_process)


@action("restart_switch")
async def restart_switch(world: World, event: Event) -> None:
    """The switch process again, from its journal (every one not running, or the one
    `switch_process` names)."""
    await world.start_switch_process(event.switch_process)


@action("stop_journal")
async def stop_journal(world: World, event: Event) -> None:
    """The PostgreSQL journal's server stopped at once, as a crash would stop it (`pg_ctl
    stop -m immediate`; needs `journal: postgresql`): the switch answers 503 until it is back."""
    server = world.settings.journal_server
    assert server is not None, "stop_journal needs journal: postgresql"  # the spec checks
    await asyncio.to_thread(postgres.halt, server)


@action("start_journal")
async def start_journal(world: World, event: Event) -> None:
    """The journal's server started again (crash recovery from its WAL): every switch
    process heals by itself, with no operator step."""
    server = world.settings.journal_server
    assert server is not None, "start_journal needs journal: postgresql"  # the spec checks
    await asyncio.to_thread(postgres.resume, server)


@action("set_behaviour", needs_participant=True)
async def set_behaviour(world: World, event: Event) -> None:
    """The participant's faults replaced; settings left out take their defaults."""
    assert event.participant is not None
    await world.set_behaviour(event.participant, event.behaviour or Behaviour())


class Event(BaseModel):
    """One line of the timeline: when its trigger comes (`at_s` seconds from the start, or
    `after_settled_pct` percent of the payment table settled at the switch), wait `delay_s`
    more, then do `action`. Events happen in the order written, each after the one before:
    so `{after_settled_pct: 50, action: kill_switch}` then `{after_settled_pct: 50,
    delay_s: 2, action: restart_switch}` restarts the switch two seconds after killing it,
    mid-run at any size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: Annotated[float, Field(ge=0, le=MAX_RUN_S)] | None = None
    after_settled_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    delay_s: Annotated[float, Field(ge=0, le=MAX_DELAY_S)] = 0.0
    action: Literal[tuple(ACTIONS)]  # type: ignore[valid-type]  # the registry's names
    participant: LabParticipantBic | None = None
    behaviour: Behaviour | None = None  # set_behaviour: the new faults
    # kill_switch, restart_switch: which of several switch processes (from 0); all if unset
    switch_process: Annotated[int, Field(ge=0, le=7)] | None = None
    note: str = Field("", max_length=MAX_NOTE_CHARS)

    @model_validator(mode="after")
    def _one_trigger_and_what_the_action_needs(self) -> Event:
        if (self.at_s is None) == (self.after_settled_pct is None):
            raise ValueError("give exactly one of at_s and after_settled_pct")
        if ACTIONS[self.action].needs_participant and self.participant is None:
            raise ValueError(f"{self.action} needs a participant")
        if self.behaviour is not None and self.action != "set_behaviour":
            raise ValueError(f"behaviour is for set_behaviour, not {self.action}")
        return self

    def trigger(self) -> str:
        """When it happens, as a person reads it: "at 3 s", "after 50 % settled"."""
        when = (f"at {self.at_s:g} s" if self.at_s is not None
                else f"after {self.after_settled_pct:g} % settled")
        return when + (f" + {self.delay_s:g} s" if self.delay_s else "")


async def perform(world: World, event: Event) -> None:
    """Do what the event says to the world."""
    await ACTIONS[event.action].perform(world, event)
