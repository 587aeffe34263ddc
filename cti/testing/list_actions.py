"""What Asterisk 22 answers to each AMI list action the project sends, empty lists included.

For every list action: the listack message, the closing event, and what it does when there is
nothing to list. Several do not send an empty list then but ``Response: Error`` and no
EventList at all (res_pjsip writes those messages with a trailing newline, which ends up
before the frame's blank line: ``Message: No Contacts found\n\r\n\r\n``). A client waiting
for ``...Complete`` waits for ever. The simulator, the replay server's answers to actions the
recording lacks and the conformance tests all read this one table (facts from the Asterisk
sources: manager.c, res_pjsip, app_queue, app_confbridge, db.c, res_manager_devicestate).
"""

from __future__ import annotations

from dataclasses import dataclass

from cti.testing.frames import Pairs, format_message


@dataclass(frozen=True, slots=True)
class ListAction:
    name: str
    message: str  # Message of the "Response: Success / EventList: start" answer
    complete: str  # the closing event
    empty_error: str | None = None  # Message of the Error answered when nothing to list


LIST_ACTIONS = {
    item.name.lower(): item
    for item in (
        ListAction("CoreShowChannels", "Channels will follow", "CoreShowChannelsComplete"),
        ListAction(
            "PJSIPShowContacts",
            "A listing of Contacts follows, presented as ContactList events",
            "ContactListComplete",
            "No Contacts found\n",
        ),
        ListAction(
            "PJSIPShowEndpoints",
            "A listing of Endpoints follows, presented as EndpointList events",
            "EndpointListComplete",
            "No endpoints found\n",
        ),
        ListAction(
            "DeviceStateList", "Device State Changes will follow", "DeviceStateListComplete"
        ),
        ListAction("QueueStatus", "Queue status will follow", "QueueStatusComplete"),
        ListAction("QueueSummary", "Queue summary will follow", "QueueSummaryComplete"),
        ListAction("Status", "Channel status will follow", "StatusComplete"),
        # app_confbridge: "No active conferences." when there is none at all,
        # "No Conference by that name found." when only others exist.
        ListAction(
            "ConfbridgeList",
            "Confbridge user list will follow",
            "ConfbridgeListComplete",
            "No active conferences.",
        ),
        ListAction("Hangup", "Channels hung up will follow", "ChannelsHungupListComplete"),
        ListAction("DBGet", "Result will follow", "DBGetComplete", "Database entry not found"),
    )
}
NO_SUCH_CONFERENCE = "No Conference by that name found."


def empty_answer(name: str, action_id: str | None) -> list[bytes]:
    """What Asterisk answers ``name`` when it has nothing to list (frames, in order)."""
    item = LIST_ACTIONS[name.lower()]
    ids: Pairs = [("ActionID", action_id)] if action_id else []
    if item.empty_error is not None:
        return [format_message([("Response", "Error"), *ids, ("Message", item.empty_error)])]
    extra: Pairs = [("Items", "0")] if item.name == "Status" else []
    return [
        format_message(
            [("Response", "Success"), *ids, ("EventList", "start"), ("Message", item.message)]
        ),
        format_message(
            [("Event", item.complete), *ids, ("EventList", "Complete"), ("ListItems", "0"), *extra]
        ),
    ]
