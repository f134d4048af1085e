"""Amazon SQS (optionally fed by SNS) adapter for the `MessageBroker` port.

Why it looks like this:

* The council's upstream shape is SNS FIFO -> SQS FIFO, so the tenure queue is always FIFO: message
  groups keep one tenure's events in order (a group is held back while one of its messages is in
  flight or waiting to be retried), and the deduplication id makes a re-published event a no-op
  within SQS's five-minute window. With `topic_name` set, tenure events go through an SNS FIFO topic
  subscribed with raw delivery, exactly like production; without it they go straight to the queue.
* SQS already counts deliveries (`ApproximateReceiveCount`) and already delays redelivery (visibility
  timeout), so `retry_later` only pushes the message's visibility out and the count grows by itself.
  The redrive policy to `<queue>-dead.fifo` is only a backstop: the worker dead-letters into its own
  table after fewer attempts, so `max_receive_count` must stay above the worker's `max_attempts`.
* Queues and topics are created when missing so a local endpoint (moto, LocalStack) needs no
  provisioning; existing ones are used as they are, since in production infrastructure code owns
  their attributes.
* boto3 clients are thread-safe and setup is guarded by a lock, so one instance may be shared.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions
import sqlalchemy as sa

from accounts.service.ports import (
    ACCOUNTS_TOPIC,
    TENURE_TOPIC,
    MessageBroker,
    QueueDepth,
    ReceivedMessage,
    TransientError,
)
from accounts.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

FIFO_SUFFIX = ".fifo"
MAX_VISIBILITY_TIMEOUT = 43_200  # 12 hours, SQS's ceiling
MAX_WAIT_SECONDS = 20  # SQS's long-poll ceiling
MAX_BATCH = 10  # SQS's ceiling for ReceiveMessage and DeleteMessageBatch
DEAD_LETTER_RETENTION_SECONDS = 1_209_600  # 14 days, the most SQS keeps anything

_NO_SUCH_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_NO_SUCH_TOPIC = frozenset({"NotFound", "NotFoundException"})
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestThrottled",
        "Throttling",
        "ThrottlingException",
        "KMS.ThrottlingException",
        "RequestTimeout",
        # The delivery is stale (its visibility ran out): SQS will deliver it again.
        "ReceiptHandleIsInvalid",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)
_TRANSIENT_BOTOCORE = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
# Characters SQS accepts in MessageGroupId / MessageDeduplicationId.
_SQS_ID = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")
_SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount", "MessageDeduplicationId", "MessageGroupId"]


def fifo_name(name: str) -> str:
    """The name with the `.fifo` suffix SQS and SNS require of FIFO queues and topics."""
    return name if name.endswith(FIFO_SUFFIX) else name + FIFO_SUFFIX


def dead_letter_name(queue_name: str) -> str:
    """`accounts-tenure-events.fifo` -> `accounts-tenure-events-dead.fifo`."""
    return fifo_name(queue_name).removesuffix(FIFO_SUFFIX) + "-dead" + FIFO_SUFFIX


def sqs_id(value: str) -> str:
    """A valid group/deduplication id: the value itself, or its SHA-256 when too long or exotic."""
    if _SQS_ID.fullmatch(value):
        return value
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class SqsBroker(MessageBroker):
    """`MessageBroker` over an SQS FIFO queue, optionally fed by an SNS FIFO topic.

    * `queue_name`: the tenure queue (`.fifo` appended if missing), dead-lettering to
      `<name>-dead.fifo` after `max_receive_count` receives.
    * `topic_name`: when set, TENURE_TOPIC is published to this SNS FIFO topic, which is subscribed
      to the queue with RawMessageDelivery; ACCOUNTS_TOPIC then also goes to an SNS FIFO topic,
      `accounts_topic_name`. When unset, both topics are FIFO queues.
    * `visibility_timeout`: how long a received message stays hidden before SQS redelivers it
      (sent with every ReceiveMessage, so it holds whatever the queue's own setting is).
    """

    @classmethod
    def from_settings(cls, settings: Settings, engine: sa.Engine) -> SqsBroker:
        """ACCOUNTS_BROKER_URL=sqs://QUEUE (the tenure queue's name when QUEUE is left out)."""
        return cls(
            queue_name=urlparse(settings.broker_url).netloc or settings.tenure_queue,
            region=settings.aws_region,
            endpoint_url=settings.sqs_endpoint_url,
            topic_name=settings.sqs_topic_name,
            accounts_topic_name=settings.sqs_accounts_topic_name,
            visibility_timeout=settings.sqs_visibility_timeout,
            max_receive_count=settings.sqs_max_receive_count,
        )

    def __init__(
        self,
        *,
        queue_name: str,
        region: str,
        endpoint_url: str | None,
        topic_name: str | None = None,
        accounts_topic_name: str | None = None,
        visibility_timeout: int = 30,
        max_receive_count: int = 10,
    ) -> None:
        self.queue_name = fifo_name(queue_name)
        self.dead_letter_queue_name = dead_letter_name(queue_name)
        self.topic_name = fifo_name(topic_name) if topic_name else None
        self.accounts_topic_name = fifo_name(accounts_topic_name or "accounts-events")
        self.visibility_timeout = max(0, min(MAX_VISIBILITY_TIMEOUT, int(visibility_timeout)))
        self.max_receive_count = max(1, int(max_receive_count))
        credentials: dict[str, str] = {}
        if endpoint_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
            # A local endpoint accepts anything, but botocore refuses to sign without credentials.
            credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        session = boto3.session.Session(region_name=region, **credentials)
        config = botocore.config.Config(
            connect_timeout=5,
            read_timeout=MAX_WAIT_SECONDS + 20,
            retries={"mode": "standard", "max_attempts": 3},
        )
        self._sqs: Any = session.client("sqs", endpoint_url=endpoint_url, config=config)
        self._sns: Any = session.client("sns", endpoint_url=endpoint_url, config=config)
        self._lock = threading.Lock()
        self._queue_url: str | None = None
        self._dead_letter_queue_url: str | None = None
        self._tenure_topic_arn: str | None = None
        self._accounts_target: str | None = None  # topic ARN (SNS mode) or queue URL

    # -- the port -------------------------------------------------------------------------------

    def publish(self, topic: str, body: bytes, *, group_id: str, message_id: str) -> None:
        """Send with MessageGroupId=group_id and MessageDeduplicationId=message_id."""
        if topic not in (TENURE_TOPIC, ACCOUNTS_TOPIC):
            raise ValueError(f"unknown topic {topic!r}")
        text = body.decode("utf-8")  # SQS carries text; our bodies are JSON
        ids = {"MessageGroupId": sqs_id(group_id), "MessageDeduplicationId": sqs_id(message_id)}
        self._ensure_ready()
        if topic == TENURE_TOPIC:
            if self._tenure_topic_arn:
                self._call(self._sns.publish, TopicArn=self._tenure_topic_arn, Message=text, **ids)
            else:
                self._call(self._sqs.send_message, QueueUrl=self._queue_url, MessageBody=text, **ids)
        elif self.topic_name:
            self._call(self._sns.publish, TopicArn=self._accounts_target, Message=text, **ids)
        else:
            self._call(self._sqs.send_message, QueueUrl=self._accounts_target, MessageBody=text, **ids)

    def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        """One ReceiveMessage: up to min(10, max_messages), long-polling int(wait_seconds) (max 20)."""
        if max_messages <= 0:
            return []
        self._ensure_ready()
        response = self._call(
            self._sqs.receive_message,
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(MAX_BATCH, max_messages),
            WaitTimeSeconds=max(0, min(MAX_WAIT_SECONDS, int(wait_seconds))),
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
        )
        messages: list[ReceivedMessage] = []
        for raw in response.get("Messages", []):
            attributes = raw.get("Attributes", {})
            messages.append(
                ReceivedMessage(
                    body=str(raw["Body"]).encode("utf-8"),
                    attempts=max(1, int(attributes.get("ApproximateReceiveCount", 1))),
                    receipt=str(raw["ReceiptHandle"]),
                    message_id=str(attributes.get("MessageDeduplicationId") or raw.get("MessageId", "")),
                )
            )
        return messages

    def ack(self, message: ReceivedMessage) -> None:
        """DeleteMessage. TransientError when the receipt is stale (SQS will deliver it again)."""
        self._ensure_ready()
        self._call(self._sqs.delete_message, QueueUrl=self._queue_url, ReceiptHandle=message.receipt)

    def retry_later(self, message: ReceivedMessage, delay_seconds: float) -> None:
        """Keep it hidden for ceil(delay_seconds) more; its next receive counts one more attempt."""
        self._ensure_ready()
        self._call(
            self._sqs.change_message_visibility,
            QueueUrl=self._queue_url,
            ReceiptHandle=message.receipt,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY_TIMEOUT, math.ceil(delay_seconds))),
        )

    def close(self) -> None:
        """Release the HTTP connection pools."""
        self._sqs.close()
        self._sns.close()

    # -- extras ---------------------------------------------------------------------------------

    def ack_many(self, messages: Sequence[ReceivedMessage]) -> None:
        """Delete in batches of ten; TransientError naming any that could not be deleted."""
        self._ensure_ready()
        failed: list[str] = []
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
            response = self._call(self._sqs.delete_message_batch, QueueUrl=self._queue_url, Entries=entries)
            for failure in response.get("Failed", []):
                failed.append(f"{chunk[int(failure['Id'])].message_id}: {failure.get('Code')}")
        if failed:
            raise TransientError(f"SQS did not delete {len(failed)} message(s): {'; '.join(failed)}")

    def purge(self) -> None:
        """Empty the tenure queue and its dead-letter queue (SQS allows one purge a minute each)."""
        self._ensure_ready()
        self._call(self._sqs.purge_queue, QueueUrl=self._queue_url)
        self._call(self._sqs.purge_queue, QueueUrl=self._dead_letter_queue_url)

    def waiting(self) -> QueueDepth:
        """Approximately how many messages wait in the tenure queue (SQS does not say how old the oldest is)."""
        self._ensure_ready()
        response = self._call(
            self._sqs.get_queue_attributes, QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return QueueDepth(int(response["Attributes"]["ApproximateNumberOfMessages"]), None)

    def dead_letter_count(self) -> int:
        """Approximate number of messages in `<queue>-dead.fifo`."""
        self._ensure_ready()
        response = self._call(
            self._sqs.get_queue_attributes,
            QueueUrl=self._dead_letter_queue_url,
            AttributeNames=["ApproximateNumberOfMessages"],
        )
        return int(response["Attributes"]["ApproximateNumberOfMessages"])

    @property
    def queue_url(self) -> str:
        self._ensure_ready()
        assert self._queue_url is not None
        return self._queue_url

    @property
    def dead_letter_queue_url(self) -> str:
        self._ensure_ready()
        assert self._dead_letter_queue_url is not None
        return self._dead_letter_queue_url

    @property
    def tenure_topic_arn(self) -> str | None:
        """The SNS topic tenure events are published to, or None when they go straight to the queue."""
        self._ensure_ready()
        return self._tenure_topic_arn

    @property
    def accounts_target(self) -> str:
        """Where account events go: an SNS topic ARN (SNS mode) or an SQS queue URL."""
        self._ensure_ready()
        assert self._accounts_target is not None
        return self._accounts_target

    # -- internals ------------------------------------------------------------------------------

    def _call(self, operation: Callable[..., T], **kwargs: Any) -> T:
        """Call boto3, turning network failures, throttling, 5xx and stale receipts into TransientError."""
        try:
            return operation(**kwargs)
        except (botocore.exceptions.ClientError, *_TRANSIENT_BOTOCORE) as error:
            transient = self._transient(error)
            if transient is None:
                raise
            raise transient from error

    def _transient(self, error: Exception) -> TransientError | None:
        """The TransientError a boto failure amounts to, or None when retrying cannot help."""
        if isinstance(error, _TRANSIENT_BOTOCORE):
            return TransientError(f"SQS/SNS unreachable: {error}")
        if not isinstance(error, botocore.exceptions.ClientError):
            return None
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _NO_SUCH_QUEUE or code in _NO_SUCH_TOPIC:
            self._queue_url = None  # deleted under us: set everything up again on the next call
            return TransientError(f"SQS/SNS resource missing, will recreate it: {error}")
        if status >= 500 or code in _TRANSIENT_CODES:
            return TransientError(f"SQS/SNS failed: {error}")
        return None

    def _ensure_ready(self) -> None:
        if self._queue_url is not None:
            return
        with self._lock:
            if self._queue_url is not None:
                return
            tenure_topic_arn = self._create_topic(self.topic_name) if self.topic_name else None
            dead_url = self._get_or_create_queue(
                self.dead_letter_queue_name, {"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS)}
            )
            dead_arn = self._queue_arn(dead_url)
            attributes = {
                "VisibilityTimeout": str(self.visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(self.max_receive_count)}
                ),
            }
            if tenure_topic_arn:
                attributes["Policy"] = _allow_topic_policy(tenure_topic_arn)
            queue_url = self._get_or_create_queue(self.queue_name, attributes)
            if tenure_topic_arn:
                self._subscribe(tenure_topic_arn, self._queue_arn(queue_url))
            if self.topic_name:
                accounts_target = self._create_topic(self.accounts_topic_name)
            else:
                accounts_target = self._get_or_create_queue(self.accounts_topic_name, {})
            self._tenure_topic_arn = tenure_topic_arn
            self._dead_letter_queue_url = dead_url
            self._accounts_target = accounts_target
            self._queue_url = queue_url  # last: it is the "ready" flag

    def _get_or_create_queue(self, name: str, attributes: dict[str, str]) -> str:
        try:
            return str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _NO_SUCH_QUEUE:
                transient = self._transient(error)
                if transient is None:
                    raise
                raise transient from error
        except _TRANSIENT_BOTOCORE as error:
            raise TransientError(f"SQS unreachable: {error}") from error
        log.info("creating SQS FIFO queue %s", name)
        fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
        response = self._call(self._sqs.create_queue, QueueName=name, Attributes={**fifo, **attributes})
        return str(response["QueueUrl"])

    def _queue_arn(self, queue_url: str) -> str:
        response = self._call(self._sqs.get_queue_attributes, QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return str(response["Attributes"]["QueueArn"])

    def _create_topic(self, name: str) -> str:
        """CreateTopic is idempotent: it returns the existing topic's ARN."""
        response = self._call(
            self._sns.create_topic,
            Name=name,
            Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "false"},
        )
        return str(response["TopicArn"])

    def _subscribe(self, topic_arn: str, queue_arn: str) -> None:
        """Subscribe the queue with raw delivery unless it already is (duplicates would double-deliver)."""
        pages: dict[str, str] = {}
        while True:
            page = self._call(self._sns.list_subscriptions_by_topic, TopicArn=topic_arn, **pages)
            for subscription in page.get("Subscriptions", []):
                if subscription.get("Protocol") == "sqs" and subscription.get("Endpoint") == queue_arn:
                    return
            if not page.get("NextToken"):
                break
            pages = {"NextToken": str(page["NextToken"])}
        self._call(
            self._sns.subscribe,
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )


def _allow_topic_policy(topic_arn: str) -> str:
    """A queue policy letting the SNS topic send to the queue (real AWS requires one; moto ignores it)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": "*",
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )
