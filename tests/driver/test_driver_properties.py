"""Validation of what clients send, as libindi does it: switch rules, number ranges, sexagesimal
input, read-only properties, unknown members and undefined properties.

First through drivers/basic.py run under both servers, with a Peer and with Debian's
indi_setprop (a real client); then indi.driver.properties directly, where that is clearer.

libindi's behaviour cited here (libs/indicore/indicom.c and libs/indibase/indidriver.c, 1.9.x):
- IUUpdateSwitch: for OneOfMany it turns every switch Off, applies the client's states, and if
  the result is not exactly one On restores the previous On switch, sets the vector Idle and
  sends "Error: invalid state switch for property LABEL (NAME). No switch is on." (or "Too many
  switches are on"). A member name it does not know: Idle, "Error: X is not a member of ...".
- IUUpdateNumber: a member it does not know: Idle and "... is not a member ..."; a value outside
  [min, max]: Alert and "Error: Invalid range for LABEL (NAME). Valid range is from MIN to MAX.
  Requested value is V"; nothing is applied unless every value is valid.
- dispatch(): a new value for a read-only property never reaches the driver ("Cannot set
  read-only property", on stderr only): the property is left exactly as it was.
Debian's indi_simulator_focus (1.9.9) answers exactly so; the messages quoted above are its.
"""

from __future__ import annotations

import base64
import math
import subprocess

import pytest
from framework_helpers import (
    BASIC,
    BASIC_DEVICE,
    SERVER_KINDS,
    client,
    collect_until,
    driver_env,
    is_vector,
    new_number,
    new_switch,
    new_text,
    round_trip,
    set_connected,
    start_server,
    values,
    wait_defs,
    wait_vector,
)

from indi.driver import (
    ALERT,
    BLOB,
    IDLE,
    OFF,
    ON,
    BLOBVector,
    Device,
    Light,
    LightVector,
    Number,
    NumberVector,
    Rejected,
    Switch,
    SwitchVector,
    Text,
    TextVector,
)
from indi.protocol import DefVector, PropertyType, SetVector, parse

SETPROP = "/usr/bin/indi_setprop"


@pytest.fixture(params=SERVER_KINDS)
def basic(request, servers, home_env):
    """A client of a server running drivers/basic.py, with the device's properties defined."""
    server = start_server(servers, request.param, BASIC, env=driver_env(home_env))
    peer = client(server)
    peer.defs = wait_defs(peer, BASIC_DEVICE, "SAY")
    peer.server = server
    return peer


def send_and_wait(peer, xml: str, name: str) -> SetVector:
    peer.send(xml)
    return wait_vector(peer, BASIC_DEVICE, name)


def current(peer, name: str) -> DefVector:
    """The property as the device defines it now."""
    peer.send(f"<getProperties version='1.7' device='{BASIC_DEVICE}' name='{name}'/>\n")
    return wait_vector(peer, BASIC_DEVICE, name, "def")


# ------------------------------------------------------------------------------- switch rules
def test_one_of_many_two_on_is_refused(basic):
    choice = send_and_wait(basic, new_switch(BASIC_DEVICE, "CHOICE", A="On", B="On"), "CHOICE")
    assert choice.state == "Idle" and "invalid state switch" in (choice.message or ""), choice
    assert values(choice) == {"A": "On", "B": "Off", "C": "Off"}
    assert values(current(basic, "CHOICE")) == {"A": "On", "B": "Off", "C": "Off"}


def test_one_of_many_none_on_is_refused(basic):
    choice = send_and_wait(basic, new_switch(BASIC_DEVICE, "CHOICE", A="Off", B="Off", C="Off"), "CHOICE")
    assert choice.state == "Idle" and "invalid state switch" in (choice.message or ""), choice
    assert values(choice) == {"A": "On", "B": "Off", "C": "Off"}


def test_one_of_many_lone_off_leaves_none_on_and_is_refused(basic):
    """libindi resets every switch of a OneOfMany before applying the client's states, so a
    message that turns nothing On leaves none On and is refused (Debian's focuser simulator, asked
    DEBUG ENABLE=Off, answers Idle "Error: invalid state switch for property Debug (DEBUG). No
    switch is on."), as protocol.md says: "if the result is not exactly one On, reverts and
    reports the vector Idle with an error"."""
    choice = send_and_wait(basic, new_switch(BASIC_DEVICE, "CHOICE", B="Off"), "CHOICE")
    assert choice.state == "Idle" and "invalid state switch" in (choice.message or ""), choice
    assert values(choice) == {"A": "On", "B": "Off", "C": "Off"}


def test_one_of_many_only_the_member_turned_on_is_enough(basic):
    choice = send_and_wait(basic, new_switch(BASIC_DEVICE, "CHOICE", C="On"), "CHOICE")
    assert choice.state == "Ok" and not choice.message, choice
    assert values(choice) == {"A": "Off", "B": "Off", "C": "On"}
    choice = send_and_wait(basic, new_switch(BASIC_DEVICE, "CHOICE", B="On"), "CHOICE")
    assert values(choice) == {"A": "Off", "B": "On", "C": "Off"}
    assert values(current(basic, "CHOICE")) == {"A": "Off", "B": "On", "C": "Off"}


def test_at_most_one(basic):
    maybe = send_and_wait(basic, new_switch(BASIC_DEVICE, "MAYBE", X="On"), "MAYBE")
    assert maybe.state == "Ok" and values(maybe) == {"X": "On", "Y": "Off"}, maybe
    maybe = send_and_wait(basic, new_switch(BASIC_DEVICE, "MAYBE", Y="On"), "MAYBE")  # the other goes Off
    assert maybe.state == "Ok" and values(maybe) == {"X": "Off", "Y": "On"}, maybe
    maybe = send_and_wait(basic, new_switch(BASIC_DEVICE, "MAYBE", X="On", Y="On"), "MAYBE")
    assert maybe.state == "Idle" and "invalid state switch" in (maybe.message or ""), maybe
    assert values(maybe) == {"X": "Off", "Y": "On"}
    maybe = send_and_wait(basic, new_switch(BASIC_DEVICE, "MAYBE", Y="Off"), "MAYBE")  # none On is allowed
    assert maybe.state == "Ok" and values(maybe) == {"X": "Off", "Y": "Off"}, maybe


def test_any_of_many(basic):
    flags = send_and_wait(basic, new_switch(BASIC_DEVICE, "FLAGS", F1="On", F3="On"), "FLAGS")
    assert flags.state == "Ok" and values(flags) == {"F1": "On", "F2": "Off", "F3": "On"}, flags
    flags = send_and_wait(basic, new_switch(BASIC_DEVICE, "FLAGS", F2="On"), "FLAGS")  # the others stay
    assert values(flags) == {"F1": "On", "F2": "On", "F3": "On"}, flags
    flags = send_and_wait(basic, new_switch(BASIC_DEVICE, "FLAGS", F1="Off", F2="Off", F3="Off"), "FLAGS")
    assert flags.state == "Ok" and values(flags) == {"F1": "Off", "F2": "Off", "F3": "Off"}, flags


# ------------------------------------------------------------------------------------ numbers
@pytest.mark.parametrize("value", ["150", "-0.5", "100.001"])
def test_a_number_out_of_range_is_refused(basic, value):
    level = send_and_wait(basic, new_number(BASIC_DEVICE, "LEVEL", VALUE=value), "LEVEL")
    assert level.state == "Alert", level
    assert "Invalid range for Value (VALUE). Valid range is from 0 to 100" in (level.message or ""), level
    assert values(level)["VALUE"] == 50
    assert values(current(basic, "LEVEL"))["VALUE"] == 50


def test_nothing_is_applied_when_one_value_is_out_of_range(basic):
    level = send_and_wait(basic, new_number(BASIC_DEVICE, "LEVEL", ANGLE="45", VALUE="101"), "LEVEL")
    assert level.state == "Alert" and values(level) == {"VALUE": 50, "ANGLE": 0}, level


def test_numbers_in_range_are_applied(basic):
    level = send_and_wait(basic, new_number(BASIC_DEVICE, "LEVEL", VALUE="0", ANGLE="-90"), "LEVEL")
    assert level.state == "Ok" and values(level) == {"VALUE": 0, "ANGLE": -90}, level
    level = send_and_wait(basic, new_number(BASIC_DEVICE, "LEVEL", VALUE="100"), "LEVEL")
    assert values(level) == {"VALUE": 100, "ANGLE": -90}, level


def test_sexagesimal_input_from_a_peer(basic):
    level = send_and_wait(basic, new_number(BASIC_DEVICE, "LEVEL", ANGLE="-10:30:18"), "LEVEL")
    assert level.state == "Ok" and math.isclose(values(level)["ANGLE"], -10.505, abs_tol=1e-9), level
    level = send_and_wait(basic, new_number(BASIC_DEVICE, "LEVEL", ANGLE="-10 30.3"), "LEVEL")
    assert math.isclose(values(level)["ANGLE"], -10.505, abs_tol=1e-9), level


def test_sexagesimal_input_from_indi_setprop(basic):
    result = subprocess.run([SETPROP, "-p", str(basic.server.port), "-n", f"{BASIC_DEVICE}.LEVEL.ANGLE=10 30 18"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    level = wait_vector(basic, BASIC_DEVICE, "LEVEL")
    assert level.state == "Ok" and math.isclose(values(level)["ANGLE"], 10.505, abs_tol=1e-9), level
    assert values(level)["VALUE"] == 50


# ------------------------------------------------------------------ refusals and what is ignored
def test_a_read_only_property_keeps_its_value(basic):
    basic.send(new_text(BASIC_DEVICE, "STATUS", WORD="hacked"))
    frames = round_trip(basic, BASIC_DEVICE)
    for frame in frames:
        if is_vector(frame, BASIC_DEVICE, "STATUS"):
            assert values(parse(frame)) == {"WORD": "ready"}, frame.raw
    assert values(current(basic, "STATUS")) == {"WORD": "ready"}


def test_a_refused_write_leaves_a_read_only_property_as_it_was(basic):
    """libindi's dispatch() drops a new value for a read-only property before the driver sees it
    (Debian's focuser simulator, sent FWHM, logs "dispatch error: Cannot set read-only property
    FWHM" on stderr and sends nothing): its state, which tells every client how the device is,
    does not change because one client sent something wrong."""
    before = current(basic, "STATUS")
    basic.send(new_text(BASIC_DEVICE, "STATUS", WORD="hacked"))
    round_trip(basic, BASIC_DEVICE)
    after = current(basic, "STATUS")
    assert (after.state, values(after)) == (before.state, values(before)), after


@pytest.mark.parametrize("name, xml", [
    pytest.param("CHOICE", new_switch(BASIC_DEVICE, "CHOICE", NOPE="On"), id="switch"),
    pytest.param("LEVEL", new_number(BASIC_DEVICE, "LEVEL", VALUE="20", NOPE="5"), id="number"),
    pytest.param("NOTE", new_text(BASIC_DEVICE, "NOTE", TEXT="changed", NOPE="x"), id="text"),
])
def test_unknown_members_are_refused_and_nothing_is_applied(basic, name, xml):
    before = values(basic.defs[name])
    answer = send_and_wait(basic, xml, name)
    assert answer.state != "Ok" and "NOPE" in (answer.message or ""), answer
    assert values(answer) == before
    assert values(current(basic, name)) == before


@pytest.mark.parametrize("name, xml", [
    pytest.param("CHOICE", new_switch(BASIC_DEVICE, "CHOICE", NOPE="On"), id="switch"),
    pytest.param("LEVEL", new_number(BASIC_DEVICE, "LEVEL", NOPE="5"), id="number"),
    pytest.param("NOTE", new_text(BASIC_DEVICE, "NOTE", NOPE="x"), id="text"),
])
def test_an_unknown_member_makes_the_property_idle_as_libindi(basic, name, xml):
    """IUUpdateSwitch, IUUpdateNumber and IUUpdateText all answer an unknown member with the
    vector Idle and "Error: NOPE is not a member of LABEL (NAME) property." (Debian's focuser
    simulator, sent POLLING_PERIOD NOPE=5: state="Idle"); Alert is for values out of range."""
    answer = send_and_wait(basic, xml, name)
    assert answer.state == "Idle" and "NOPE is not a member" in (answer.message or ""), answer


def test_values_for_a_property_not_defined_now_are_ignored(basic):
    basic.send(new_number(BASIC_DEVICE, "GAIN", GAIN_VALUE="500"))    # connected-only, not connected
    basic.send(new_number(BASIC_DEVICE, "NO_SUCH_PROPERTY", X="1"))  # never defined
    frames = round_trip(basic, BASIC_DEVICE)
    assert not [f for f in frames if f.attrs.get("name") in ("GAIN", "NO_SUCH_PROPERTY")], frames
    assert not [f for f in frames if f.tag == "message"], [f.raw for f in frames if f.tag == "message"]
    set_connected(basic, BASIC_DEVICE)
    gain = wait_vector(basic, BASIC_DEVICE, "GAIN", "def")
    assert values(gain) == {"GAIN_VALUE": 10}


def test_a_blob_from_a_client_is_accepted_and_the_driver_goes_on(basic):
    """UPLOAD is a writable BLOB with no handler: the framework accepts what a client sends as it
    does for other types (the value stored, the vector Ok and sent back) and goes on serving."""
    basic.send(f"<enableBLOB device='{BASIC_DEVICE}'>Also</enableBLOB>\n")
    data = b"uploaded bytes \x00\xff"
    basic.send(f"<newBLOBVector device='{BASIC_DEVICE}' name='UPLOAD'><oneBLOB name='FILE' size='{len(data)}' "
               f"format='.bin'>{base64.b64encode(data).decode()}</oneBLOB></newBLOBVector>\n")
    basic.send(new_switch(BASIC_DEVICE, "SAY", NOW="On"))
    frames = collect_until(basic, lambda f: is_vector(f, BASIC_DEVICE, "SAY"), timeout=8,
                           what="an answer to SAY after a newBLOBVector (is the driver still serving?)")
    uploads = [parse(f) for f in frames if is_vector(f, BASIC_DEVICE, "UPLOAD")]
    assert uploads and uploads[-1].state == "Ok", [f.raw[:300] for f in frames]
    [member] = uploads[-1].members
    assert (member.value, member.format, member.size) == (data, ".bin", len(data))


def test_values_for_another_device_are_not_ours(basic):
    basic.send(new_number("Somebody Else", "LEVEL", VALUE="20"))
    round_trip(basic, BASIC_DEVICE)
    assert values(current(basic, "LEVEL"))["VALUE"] == 50


# ====================================================================== properties.py directly
class Holder(Device):
    default_name = "Holder"


def added(vector):
    """The vector added to a device with no driver (so send() has somewhere to go and nowhere to write)."""
    Holder().add(vector)
    return vector


def test_members_default_their_label_to_their_name_and_convert_values():
    assert Text("T").label == "T" and Text("T").value == ""
    number = Number("N", "Label", "%.1f", 0, 10, 1, 3)
    assert (number.label, number.value, number.min, number.max, number.step) == ("Label", 3.0, 0.0, 10.0, 1.0)
    assert isinstance(Number("I", value=3).value, float)
    assert Switch("S").value is OFF and Switch("S", value=True).value is ON and Switch("S", value="On").value is ON
    assert Light("L").value is IDLE and Light("L", value="Alert").value is ALERT
    assert BLOB("B").value == b"" and BLOB("B").size is None


def test_number_text_uses_the_format():
    assert Number("RA", format="%010.6m", value=20.1505).text == "  20:09:02"
    assert Number("V", format="%.2f", value=1.005).text == f"{1.005:.2f}"


def test_a_vector_holds_members_of_its_own_type_only():
    with pytest.raises(TypeError):
        NumberVector("N", members=[Text("T")])
    with pytest.raises(TypeError):
        SwitchVector("S", members=[Number("N")])


def test_vector_access():
    vector = NumberVector("N", members=[Number("A", value=1), Number("B", value=2)])
    assert vector["A"].value == 1 and vector.value("B") == 2 and len(vector) == 2
    assert "A" in vector and "C" not in vector
    assert [m.name for m in vector] == ["A", "B"] and vector.values == {"A": 1, "B": 2}
    assert vector.label == "N" and vector.group == "Main Control" and vector.perm == "rw" and vector.state == "Idle"


def test_switch_helpers():
    vector = SwitchVector("S", members=[Switch("A"), Switch("B", value=ON), Switch("C")])
    assert vector.on == "B" and vector.is_on("B") and not vector.is_on("A")
    vector.select("C")
    assert vector.values == {"A": OFF, "B": OFF, "C": ON}
    vector.select(None)
    assert vector.on is None and vector.rule == "OneOfMany"


def test_switch_check_one_of_many():
    vector = SwitchVector("S", members=[Switch("A", value=ON), Switch("B"), Switch("C")])
    assert vector.check({"C": "On"}) == {"A": OFF, "B": OFF, "C": ON}
    assert vector.check({"A": "On"}) == {"A": ON, "B": OFF, "C": OFF}
    for bad in ({"A": "On", "B": "On"}, {"A": "Off", "B": "Off", "C": "Off"}, {"A": "Off"}):
        with pytest.raises(Rejected, match="invalid state switch"):
            vector.check(bad)
    assert vector.values == {"A": ON, "B": OFF, "C": OFF}  # check() never changes anything


def test_switch_check_lone_off_in_one_of_many_is_refused_as_libindi():
    """See test_one_of_many_lone_off_leaves_none_on_and_is_refused: libindi resets every switch
    first, so turning one that is already Off "Off" leaves none On."""
    vector = SwitchVector("S", members=[Switch("A", value=ON), Switch("B"), Switch("C")])
    with pytest.raises(Rejected, match="invalid state switch"):
        vector.check({"B": "Off"})


def test_switch_check_at_most_one_and_any_of_many():
    at_most = SwitchVector("S", rule="AtMostOne", members=[Switch("A", value=ON), Switch("B")])
    assert at_most.check({"B": "On"}) == {"A": OFF, "B": ON}
    assert at_most.check({"A": "Off"}) == {"A": OFF, "B": OFF}
    with pytest.raises(Rejected, match="at most one"):
        at_most.check({"A": "On", "B": "On"})
    anyof = SwitchVector("S", rule="AnyOfMany", members=[Switch("A", value=ON), Switch("B")])
    assert anyof.check({"B": "On"}) == {"A": ON, "B": ON}
    assert anyof.check({"A": "Off"}) == {"A": OFF, "B": OFF}


def test_number_check():
    vector = NumberVector("N", "Level", members=[Number("V", "Value", min=0, max=100), Number("FREE", min=0, max=0)])
    assert vector.check({"V": 100, "FREE": -1e9}) == {"V": 100.0, "FREE": -1e9}  # min == max: no range
    with pytest.raises(Rejected, match=r"Invalid range for Value \(V\)\. Valid range is from 0 to 100\. "
                                       r"Requested value is 101"):
        vector.check({"V": 101})
    with pytest.raises(Rejected, match="not a number"):
        vector.check({"V": math.nan})


def test_check_refuses_read_only_and_unknown_members():
    with pytest.raises(Rejected, match="read-only"):
        TextVector("T", perm="ro", members=[Text("A")]).check({"A": "x"})
    with pytest.raises(Rejected, match="NOPE is not a member of Label"):
        NumberVector("N", "Label", members=[Number("A")]).check({"A": 1, "NOPE": 2})
    with pytest.raises(Rejected, match="are not members"):
        SwitchVector("S", members=[Switch("A")]).check({"X": "On", "Y": "On"})


def test_text_check_converts_to_text():
    assert TextVector("T", members=[Text("A")]).check({"A": 5}) == {"A": "5"}


def test_apply_and_send_without_a_device():
    vector = NumberVector("N", members=[Number("A")])
    vector.apply({"A": 4.0})
    vector.send(state="Busy", A=5.0)  # not added to a device: nothing to send to, no error
    assert vector.value("A") == 5.0 and vector.state == "Busy"
    with pytest.raises(RuntimeError):
        vector.definition()


def test_definition_and_update_elements():
    number = added(NumberVector("N", "Label", "Group", "rw", "Ok", 5, [Number("A", "a", "%.1f", 0, 10, 1, 2)]))
    definition = number.definition()
    assert isinstance(definition, DefVector) and definition.type is PropertyType.NUMBER
    assert (definition.device, definition.name, definition.label, definition.group, definition.state,
            definition.perm, definition.timeout) == ("Holder", "N", "Label", "Group", "Ok", "rw", 5)
    [member] = definition.members
    assert (member.name, member.label, member.format, member.min, member.max, member.step, member.value) == \
        ("A", "a", "%.1f", 0, 10, 1, 2)
    update = number.update_element("hello")
    assert isinstance(update, SetVector) and update.message == "hello" and update.state == "Ok"
    assert [(m.name, m.value) for m in update.members] == [("A", 2)]

    switch = added(SwitchVector("S", rule="AtMostOne", members=[Switch("A", "Label A")]))
    assert switch.definition().rule == "AtMostOne" and switch.definition().members[0].label == "Label A"
    assert switch.update_element().members[0].label is None


def test_light_and_blob_vectors():
    light = added(LightVector("L", members=[Light("A", value="Ok")]))
    assert light.perm == "ro" and light.definition().type is PropertyType.LIGHT
    assert light.definition().members[0].value == "Ok"
    with pytest.raises(Rejected):
        light.check({"A": "Alert"})
    blob = added(BLOBVector("B", members=[BLOB("DATA", "Data", b"\x00\x01", ".bin")]))
    assert blob.definition().members[0].value is None  # a definition carries no data
    [member] = blob.update_element().members
    assert (member.value, member.format, member.size) == (b"\x00\x01", ".bin", None)
