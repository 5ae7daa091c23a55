import itertools

from videodb_retry.rules.redelivery_policy import MAX_VISIBILITY_SECONDS, RedeliveryPolicy


def test_delay_grows_with_receive_count_and_is_capped():
    policy = RedeliveryPolicy(first_delay_seconds=30, factor=2, max_delay_seconds=900)
    delays = [policy.delay(n) for n in range(1, 9)]
    assert 27 <= delays[0] <= 33
    # ±10 % jitter keeps the doubling steps apart until the cap
    assert all(b > a for a, b in itertools.pairwise(delays[:5]))
    assert 810 <= delays[-1] <= 900


def test_retry_after_is_honoured_but_bounded():
    policy = RedeliveryPolicy(first_delay_seconds=30)
    assert policy.delay(1, retry_after=120) == 120
    assert 27 <= policy.delay(1, retry_after=5) <= 33
    assert policy.delay(1, retry_after=10**9) == MAX_VISIBILITY_SECONDS


def test_last_delivery():
    policy = RedeliveryPolicy(max_receive_count=5)
    assert not policy.is_last_delivery(4)
    assert policy.is_last_delivery(5)


def test_the_longest_delay_is_accepted_by_sqs_however_late_in_its_invocation_the_record_fails():
    # SQS counts 12 h from the receive; a record reaches the function up to the batching
    # window (300 s) after it and fails up to the function's timeout (900 s) into the run.
    from videodb_retry_local.stack.aws_limits import StrictAws

    now = [0.0]
    strict = StrictAws(clock=lambda: now[0])
    strict.after("ReceiveMessage", {}, {"Messages": [{"ReceiptHandle": "h"}]})
    now[0] = 300 + 900
    longest = RedeliveryPolicy(max_delay_seconds=10**9).delay(50, retry_after=10**9)
    strict.before("ChangeMessageVisibility", {"ReceiptHandle": "h", "VisibilityTimeout": longest})
    assert longest == MAX_VISIBILITY_SECONDS == 42_000
