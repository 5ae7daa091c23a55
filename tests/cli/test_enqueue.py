"""`enqueue`: local validation, batches of ten, stdin and files, per-id failures."""

from __future__ import annotations

from typing import Any

from videodb_retry.rules.messages import parse_body

from tests.cli.conftest import ApiCalls, Queues, drain


def test_25_ids_go_in_3_batches_and_all_arrive(
    cli: Any, sqs: Any, queues: Queues, api_calls: ApiCalls
) -> None:
    ids = [f"download-{n:02d}" for n in range(25)]
    result = cli("enqueue", "--queue-url", queues.url, *ids)
    assert result.code == 0, result.err
    batches = api_calls.named("SendMessageBatch")
    assert [len(b["Entries"]) for b in batches] == [10, 10, 5]
    assert sorted(m["Body"] for m in drain(sqs, queues.url)) == ids  # bare-id bodies
    assert result.out.strip() == f"sent 25 download id(s) to {queues.url}"
    assert result.err == ""


def test_reason_sends_the_contracts_json_shape(cli: Any, sqs: Any, queues: Queues) -> None:
    result = cli("enqueue", "--queue-url", queues.url, "--reason", "customer ticket 42", "dl-1", "dl_2")
    assert result.code == 0
    requests = sorted((parse_body(m["Body"]) for m in drain(sqs, queues.url)), key=lambda r: r.download_id)
    assert [(r.download_id, r.attempt, r.reason) for r in requests] == [
        ("dl-1", 1, "customer ticket 42"),
        ("dl_2", 1, "customer ticket 42"),
    ]


def test_stdin_skips_blank_lines_and_comments(cli: Any, sqs: Any, queues: Queues) -> None:
    text = "# failed yesterday\n\ndownload-a\n   download-b  \r\n\n  # indented comment\ndownload-c\n"
    result = cli("enqueue", "--queue-url", queues.url, "-", stdin=text)
    assert result.code == 0, result.err
    assert sorted(m["Body"] for m in drain(sqs, queues.url)) == ["download-a", "download-b", "download-c"]


def test_files_and_arguments_together(cli: Any, sqs: Any, queues: Queues, tmp_path: Any) -> None:
    (tmp_path / "one.txt").write_text("f1\n# note\nf2\n")
    (tmp_path / "two.txt").write_text("f3")
    result = cli("enqueue", "--queue-url", queues.url, "arg1", "--file", "one.txt", "-f", "two.txt")
    assert result.code == 0, result.err
    assert sorted(m["Body"] for m in drain(sqs, queues.url)) == ["arg1", "f1", "f2", "f3"]


def test_invalid_ids_are_named_and_valid_ones_still_sent(
    cli: Any, sqs: Any, queues: Queues, tmp_path: Any, api_calls: ApiCalls
) -> None:
    (tmp_path / "ids.txt").write_text("good-1\nbad id\n../etc\n" + "x" * 129 + "\ngood-2\n")
    result = cli("enqueue", "--queue-url", queues.url, "--file", "ids.txt", "good-3", "")
    assert result.code == 1
    assert sorted(m["Body"] for m in drain(sqs, queues.url)) == ["good-1", "good-2", "good-3"]
    errors = result.err_lines
    assert errors[0] == "videodb-retry: argument 2: download_id is empty"
    assert errors[1].startswith("videodb-retry: ids.txt:2: download_id 'bad id' has characters other than")
    assert errors[2].startswith("videodb-retry: ids.txt:3: download_id '../etc'")
    assert errors[3] == "videodb-retry: ids.txt:4: download_id is longer than 128 characters"
    assert errors[-1] == "videodb-retry: 4 of 7 id(s) failed"
    assert all(
        not p["Entries"][0]["MessageBody"].startswith(".") for p in api_calls.named("SendMessageBatch")
    )


def test_only_invalid_ids_sends_nothing(cli: Any, queues: Queues, api_calls: ApiCalls) -> None:
    result = cli("enqueue", "--queue-url", queues.url, "a/b")
    assert result.code == 1
    assert api_calls.named("SendMessageBatch") == []
    assert result.out == ""


def test_repeated_ids_are_sent_once(cli: Any, sqs: Any, queues: Queues) -> None:
    result = cli("enqueue", "--queue-url", queues.url, "a", "b", "a", "-", stdin="b\nc\n")
    assert result.code == 0
    assert sorted(m["Body"] for m in drain(sqs, queues.url)) == ["a", "b", "c"]
    assert "2 repeated id(s) sent once only" in result.err


def test_ids_sqs_refuses_are_reported(cli: Any, sqs: Any, queues: Queues, api_calls: ApiCalls) -> None:
    def refuse_dl_3(original: Any, client: Any, params: dict[str, Any]) -> Any:
        keep = [e for e in params["Entries"] if e["MessageBody"] != "dl-3"]
        answer = original(client, "SendMessageBatch", {**params, "Entries": keep})
        refused = [e for e in params["Entries"] if e["MessageBody"] == "dl-3"]
        answer["Failed"] = [
            {"Id": e["Id"], "SenderFault": True, "Code": "InvalidMessageContents", "Message": "nope"}
            for e in refused
        ]
        return answer

    api_calls.answers["SendMessageBatch"] = refuse_dl_3
    result = cli("enqueue", "--queue-url", queues.url, *[f"dl-{n}" for n in range(12)])
    assert result.code == 1
    assert len(drain(sqs, queues.url)) == 11
    assert "videodb-retry: argument 4: dl-3: refused by SQS: InvalidMessageContents: nope" in result.err_lines
    assert result.err_lines[-1] == "videodb-retry: 1 of 12 id(s) failed"


def test_sqs_side_failures_are_sent_again(cli: Any, sqs: Any, queues: Queues, api_calls: ApiCalls) -> None:
    first = {"done": False}

    def fail_once(original: Any, client: Any, params: dict[str, Any]) -> Any:
        if first["done"]:
            return original(client, "SendMessageBatch", params)
        first["done"] = True
        head, tail = params["Entries"][:1], params["Entries"][1:]
        answer = original(client, "SendMessageBatch", {**params, "Entries": tail})
        answer["Failed"] = [
            {"Id": head[0]["Id"], "SenderFault": False, "Code": "InternalError", "Message": "x"}
        ]
        return answer

    api_calls.answers["SendMessageBatch"] = fail_once
    result = cli("enqueue", "--queue-url", queues.url, "a", "b", "c")
    assert result.code == 0, result.err
    assert sorted(m["Body"] for m in drain(sqs, queues.url)) == ["a", "b", "c"]
    assert len(api_calls.named("SendMessageBatch")) == 2


def test_missing_queue_is_one_line(cli: Any, queues: Queues) -> None:
    missing = queues.url.replace("/retry", "/no-such-queue")
    result = cli("enqueue", "--queue-url", missing, "a")
    assert result.code == 1
    assert len(result.err_lines) == 1
    assert result.err.startswith("videodb-retry: SendMessageBatch: the queue does not exist")
    assert "(0 of 1 id(s) sent before this)" in result.err


def test_progress_is_shown_when_asked(cli: Any, queues: Queues) -> None:
    result = cli("enqueue", "--queue-url", queues.url, "--progress", *[f"p{n}" for n in range(25)])
    assert result.code == 0
    assert result.err.splitlines() == ["sent 10/25", "sent 20/25", "sent 25/25"]


def test_no_progress_when_stderr_is_not_a_terminal(cli: Any, queues: Queues) -> None:
    result = cli("enqueue", "--queue-url", queues.url, *[f"p{n}" for n in range(25)])
    assert result.err == ""


def test_empty_input_sends_nothing(cli: Any, queues: Queues, api_calls: ApiCalls) -> None:
    result = cli("enqueue", "--queue-url", queues.url, "-", stdin="# nothing today\n\n")
    assert result.code == 0
    assert api_calls.named("SendMessageBatch") == []
    assert "nothing sent" in result.err
