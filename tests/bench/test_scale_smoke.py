"""The harness of ``python -m bench scale`` with 5,000 clients (2,000 through Redis): counts,
not speed."""

from __future__ import annotations

import os
import signal

from bench import scale
from bench.hubload import Fleet, Target

CLIENTS = 5000
REDIS_CLIENTS = 2000


def test_every_client_connects_and_gets_every_publication_exactly_once() -> None:
    settings = scale.Settings(
        clients=CLIENTS, workers=2, broker="memory", idle_seconds=2, log=lambda _: None
    )
    hub = scale.HubRun(settings)
    hub.start()
    fleet = Fleet(Target(hub.port, scale.token(), scale.API_KEY, settings.channels))
    run = scale.Scale(settings, hub, fleet)
    try:
        fleet.add(CLIENTS, rate=5000)
        scale.wait_for(lambda: fleet.report()["ready"] == CLIENTS, 50, "every client subscribed", 0.25)
        run.idle()  # measured, and one worker profiled (py-spy is a dev dependency)
        run.publish(5, 10.0, broadcast=False)  # to the channel all share
        run.publish(5, 10.0, broadcast=True)  # to each of the 100 channels
        # A worker dies: its clients come back through the other and recover what they missed.
        os.kill(hub.workers()[0], signal.SIGKILL)
        run.publish(5, 10.0, broadcast=True)
        scale.wait_for(lambda: fleet.report()["ready"] == CLIENTS, 50, "every client back", 0.25)
        report = run.wait_delivered(30)
    finally:
        fleet.close()
        hub.close()
    # The ten made before the kill were all answered; of the five after it, the hub's
    # positions say how many it made, answered or not.
    assert 10 * CLIENTS <= run.expected <= 15 * CLIENTS
    assert run.expected % CLIENTS == 0
    assert report["live"] + report["recovered"] == run.expected
    assert report["drops"] > 0
    assert report["duplicates"] == report["gaps"] == report["unrecovered"] == report["errors"] == 0
    idle = run.results["idle"]
    assert idle["seconds"] > 0 and isinstance(idle["profile"], list)


def test_with_redis_the_whole_hub_killed_and_restarted_loses_no_client_and_nothing() -> None:
    """The harness's last storm: SIGKILL the hub's whole tree and start it again while a
    publisher keeps going; the clients reconnect, subscribe again from their positions and
    recover from Redis's history what was acknowledged meanwhile."""
    settings = scale.Settings(clients=REDIS_CLIENTS, workers=2, broker="redis", log=lambda _: None)
    hub = scale.HubRun(settings)
    hub.start_redis()
    hub.start()
    fleet = Fleet(Target(hub.port, scale.token(), scale.API_KEY, settings.channels))
    run = scale.Scale(settings, hub, fleet)
    try:
        fleet.add(REDIS_CLIENTS, rate=2000)
        scale.wait_for(lambda: fleet.report()["ready"] == REDIS_CLIENTS, 50, "every client", 0.25)
        run.storm_hub()
        report = fleet.report()
    finally:
        fleet.close()
        hub.close()
    storm = run.results["hub_restart"]
    assert storm["dropped"] >= REDIS_CLIENTS  # every client lost its connection
    assert report["ready"] == REDIS_CLIENTS
    assert storm["recovered"] > 0 and storm["complete"] and storm["missing"] == 0
    assert storm["duplicates"] == storm["gaps"] == storm["unrecovered"] == 0
    assert report["errors"] == report["epoch_changes"] == 0
