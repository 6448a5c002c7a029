"""Byte-level tests of the AMI wire parser: what real links deliver, read by read."""

from __future__ import annotations

import pytest

from cti_bridge.ami.parser import (
    AMIParser,
    FramingError,
    Message,
    format_action,
    parse_block,
    parse_stream,
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
LOGIN_OK = b"Response: Success\r\nActionID: login\r\nMessage: Authentication accepted\r\n\r\n"


def feed_all(parser: AMIParser, chunks: list[bytes]) -> list[Message]:
    out: list[Message] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def test_banner_is_not_a_message_and_is_kept() -> None:
    parser = AMIParser()
    msgs = parser.feed(BANNER + LOGIN_OK)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert msgs == [
        {"Response": "Success", "ActionID": "login", "Message": "Authentication accepted"}
    ]
    assert parser.legacy_command_output is False


def test_banner_split_across_reads() -> None:
    parser = AMIParser()
    assert parser.feed(b"Asterisk Call Man") == []
    assert parser.feed(b"ager/11.0.0\r") == []
    assert parser.banner is None
    msgs = parser.feed(b"\n" + LOGIN_OK)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert [m.action_id for m in msgs] == ["login"]


def test_stream_without_banner_keeps_its_first_message() -> None:
    msgs = AMIParser().feed(LOGIN_OK)
    assert msgs[0]["Message"] == "Authentication accepted"


def test_bare_newline_endings() -> None:
    data = b"Asterisk Call Manager/11.0.0\nEvent: Newchannel\nChannel: PJSIP/1001-1\n\n"
    msgs = parse_stream(data)
    assert msgs == [{"Event": "Newchannel", "Channel": "PJSIP/1001-1"}]


def test_crlf_split_between_cr_and_lf() -> None:
    parser = AMIParser()
    data = BANNER + b"Event: Hangup\r\nCause: 16\r\n\r\n"
    cut = data.index(b"\r\n\r\n") + 1  # after the first CR of the terminator
    msgs = feed_all(parser, [data[:cut], data[cut : cut + 1], data[cut + 1 :]])
    assert msgs == [{"Event": "Hangup", "Cause": "16"}]
    assert parser.buffered == 0


def test_every_two_way_split_gives_the_same_messages() -> None:
    data = BANNER + LOGIN_OK + "Event: Newchannel\r\nCallerIDName: Zoë Müller\r\n\r\n".encode()
    whole = parse_stream(data)
    for cut in range(len(data) + 1):
        assert feed_all(AMIParser(), [data[:cut], data[cut:]]) == whole, cut


def test_utf8_character_split_across_reads() -> None:
    data = BANNER + "Event: Newchannel\r\nCallerIDName: Łódź ☎ 日本\r\n\r\n".encode()
    cut = data.index("☎".encode()) + 1  # inside the three bytes of ☎
    parser = AMIParser()
    assert parser.feed(data[:cut]) == []
    msgs = parser.feed(data[cut:])
    assert msgs[0]["CallerIDName"] == "Łódź ☎ 日本"


def test_cp1252_caller_name_comes_through_readable() -> None:
    data = BANNER + b"Event: Newchannel\r\nCallerIDName: Fran\xe7ois \x80 M\xfcller\r\n\r\n"
    msgs = parse_stream(data)
    assert msgs[0]["CallerIDName"] == "François € Müller"


def test_bytes_cp1252_leaves_undefined_fall_back_to_latin1() -> None:
    data = BANNER + b"Event: Newchannel\r\nCallerIDName: A\x81B\x8dC\r\n\r\n"
    msgs = parse_stream(data)
    assert msgs[0]["CallerIDName"] == "A\x81B\x8dC"


def test_one_bad_message_does_not_spoil_the_next() -> None:
    data = BANNER + b"Event: A\r\nName: \xff\r\n\r\nEvent: B\r\nName: \xc3\xa9\r\n\r\n"
    a, b = parse_stream(data)
    assert a["Name"] == "ÿ"
    assert b["Name"] == "é"


def test_extra_blank_lines_between_messages() -> None:
    data = BANNER + b"Event: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n\r\n"
    assert [m.event for m in parse_stream(data)] == ["A", "B"]


def test_repeated_headers_are_kept_in_order() -> None:
    data = (
        BANNER + b"Event: Newchannel\r\nChanVariable: A=1\r\nChanVariable: B=x=y\r\n"
        b"Channel: PJSIP/1\r\nChanVariable: C=\r\n\r\n"
    )
    (msg,) = parse_stream(data)
    assert msg["ChanVariable"] == "A=1"  # the plain key stays text
    assert msg.getall("ChanVariable") == ["A=1", "B=x=y", "C="]
    assert msg.variables() == {"A": "1", "B": "x=y", "C": ""}
    assert msg.getall("Channel") == ["PJSIP/1"]
    assert msg.getall("Missing") == []


def test_value_with_colon_space_is_kept_whole() -> None:
    (msg,) = parse_stream(BANNER + b"Event: Newexten\r\nAppData: a: b: c\r\n\r\n")
    assert msg["AppData"] == "a: b: c"


def test_header_without_space_and_malformed_line() -> None:
    (msg,) = parse_stream(BANNER + b"Event: X\r\nUptime:12\r\nno colon here\r\n\r\n")
    assert msg["Uptime"] == "12"
    assert msg.malformed == ["no colon here"]


def test_an_event_of_100_kb_is_one_message() -> None:
    headers = b"".join(b"ChanVariable: V%04d=%s\r\n" % (i, b"x" * 90) for i in range(1000))
    data = BANNER + b"Event: VarSet\r\n" + headers + b"\r\n"
    assert len(data) > 100_000
    parser = AMIParser()
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    (msg,) = feed_all(parser, chunks)
    assert len(msg.getall("ChanVariable")) == 1000
    assert msg.getall("ChanVariable")[999] == "V0999=" + "x" * 90


def test_a_single_line_far_over_16_kib() -> None:
    value = "é" * 60_000  # 120 KB of UTF-8 in one header line
    data = BANNER + f"Event: Newexten\r\nAppData: {value}\r\n\r\n".encode()
    (msg,) = feed_all(AMIParser(), [data[i : i + 4096] for i in range(0, len(data), 4096)])
    assert msg["AppData"] == value


def test_endless_message_is_a_framing_error() -> None:
    parser = AMIParser(max_message=1000)
    parser.feed(BANNER + b"Event: X\r\n")
    with pytest.raises(FramingError):
        parser.feed(b"Y: " + b"z" * 2000)


LEGACY_BANNER = b"Asterisk Call Manager/1.3\r\n"
LEGACY_COMMAND = (
    b"Response: Follows\r\nPrivilege: Command\r\nActionID: cmd-1\r\n"
    b"Channel              Location             State   Application(Data)\r\n"
    b"Note: a line that looks like a header\r\n"
    b"\r\n"
    b"0 active channels\r\n"
    b"--END COMMAND--\r\n\r\n"
)


def test_legacy_follows_command_output() -> None:
    parser = AMIParser()
    msgs = parser.feed(LEGACY_BANNER + LEGACY_COMMAND + b"Event: FullyBooted\r\n\r\n")
    assert parser.legacy_command_output is True
    cmd, booted = msgs
    assert cmd.response == "Follows"
    assert cmd.action_id == "cmd-1"
    assert cmd["Privilege"] == "Command"
    assert cmd.getall("Output") == [
        "Channel              Location             State   Application(Data)",
        "Note: a line that looks like a header",
        "",
        "0 active channels",
    ]
    assert booted.event == "FullyBooted"


def test_legacy_follows_split_anywhere() -> None:
    data = LEGACY_BANNER + b"Event: A\r\n\r\n" + LEGACY_COMMAND + b"Event: B\r\n\r\n"
    whole = parse_stream(data)
    assert [m.get("Event") or m.get("Response") for m in whole] == ["A", "Follows", "B"]
    for cut in range(len(data) + 1):
        assert feed_all(AMIParser(), [data[:cut], data[cut:]]) == whole, cut


def test_forged_follows_does_not_stall_a_current_pbx() -> None:
    # On AMI 11 there is no Follows mode: a forged "Response: Follows" is one message.
    data = BANNER + b"Response: Follows\r\nActionID: x\r\n\r\nEvent: Hangup\r\n\r\n"
    msgs = parse_stream(data)
    assert [m.get("Event") or m.get("Response") for m in msgs] == ["Follows", "Hangup"]


def test_current_command_output_lines() -> None:
    data = BANNER + (
        b"Response: Success\r\nActionID: c\r\nMessage: Command output follows\r\n"
        b"Output: Channel  Location  \r\nOutput: \r\nOutput: 0 active channels\r\n\r\n"
    )
    (msg,) = parse_stream(data)
    assert msg.getall("Output") == ["Channel  Location  ", "", "0 active channels"]


def test_parse_block_fast_and_careful_paths_agree() -> None:
    assert parse_block(b"Event: A\nX: 1") == {"Event": "A", "X": "1"}
    repeated = parse_block(b"Event: A\nX: 1\nX: 2")
    assert repeated["X"] == "1"
    assert repeated.getall("X") == ["1", "2"]


def test_format_action_bytes() -> None:
    headers: dict[str, str | int | list[str]] = {
        "Channel": "PJSIP/1001",
        "Timeout": 20000,
        "Variable": ["A=1", "B=2"],
    }
    data = format_action("Originate", headers)
    assert data == (
        b"Action: Originate\r\nChannel: PJSIP/1001\r\nTimeout: 20000\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\n\r\n"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"CallerID": "Piet\r\n\r\nAction: Hangup"},
        {"CallerID": "Piet\nEvent: x"},
        {"Variable": ["A=1", "B=\r2"]},
        {"Bad\r\nName": "x"},
        {"Bad: name": "x"},
    ],
)
def test_format_action_refuses_header_injection(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        format_action("Originate", headers)


def test_format_action_refuses_line_break_in_action_name() -> None:
    with pytest.raises(ValueError):
        format_action("Ping\r\nAction: Hangup")
