"""The openai teacher against a scripted local server (tests/fake_openai.py): the client's own
retries and timeouts, the image as a PNG data URL, truncation, reasoning_content, concurrency.

Error replies carry `retry-after-ms: 10`, which the openai client honours instead of its 0.5 s
exponential backoff, so retried tests stay fast; a timeout has no response headers, so its one
retry waits the client's own 0.375-0.5 s.
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from fake_openai import FakeOpenAI
from PIL import Image

from visionr1.teachers import OpenAITeacher, make_teacher


def teacher(srv: FakeOpenAI, **kw) -> OpenAITeacher:
    kw = {"timeout_s": 5.0, "max_retries": 2, **kw}
    return OpenAITeacher(base_url=srv.base_url, model="fake-vl", api_key_env="VISIONR1_TEST_NO_SUCH_KEY", **kw)


def test_text_request_shape_and_reply():
    with FakeOpenAI(script=[("ok", "a grid of shapes")]) as srv:
        t = teacher(srv, max_tokens=123, temperature=0.6)
        r = t.complete("cot", "Question: how many?")
    assert (r.text, r.truncated) == ("a grid of shapes", False)
    assert r.meta["usage"]["completion_tokens"] == 4 and r.meta["latency_s"] >= 0
    body = srv.requests[0]
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("fake-vl", 123, 0.6)
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Question: how many?"}]}]


@pytest.mark.parametrize("code", [429, 500, 503])  # rate limit, server error, overloaded: all retried
def test_error_status_is_retried(code):
    with FakeOpenAI(script=[("status", code), ("ok", "fine")]) as srv:
        r = teacher(srv).complete("pseudo_cot", "p")
    assert r.text == "fine" and len(srv.requests) == 2


def test_timeout_is_retried():
    with FakeOpenAI(script=[("sleep", 1.0), ("ok", "second try")]) as srv:
        r = teacher(srv, timeout_s=0.3).complete("description", "p")
    assert r.text == "second try" and len(srv.requests) == 2


def test_retries_exhausted_raise_the_openai_error():
    with FakeOpenAI(script=[("status", 500), ("status", 500), ("ok", "too late")]) as srv:
        with pytest.raises(openai.InternalServerError):
            teacher(srv, max_retries=1).complete("cot", "p")
    assert len(srv.requests) == 2  # one try + one retry, the third action never asked for


def test_client_error_is_not_retried():  # a 400 (bad request) will not get better by asking again
    with FakeOpenAI(script=[("status", 400), ("ok", "never")]) as srv:
        with pytest.raises(openai.BadRequestError):
            teacher(srv).complete("cot", "p")
    assert len(srv.requests) == 1


def test_timeout_exhausted_raises_apitimeouterror():
    with FakeOpenAI(script=[("sleep", 1.0)]) as srv:
        with pytest.raises(openai.APITimeoutError):
            teacher(srv, timeout_s=0.2, max_retries=0).complete("cot", "p")


def test_image_is_sent_as_png_data_url_with_the_same_pixels():
    img = Image.new("RGB", (6, 4), (255, 255, 255))
    img.putpixel((1, 2), (220, 30, 30))
    img.putpixel((5, 3), (30, 60, 220))
    with FakeOpenAI() as srv:
        teacher(srv).complete("pseudo_cot", "describe", image=img)
    image_part, text_part = srv.requests[0]["messages"][0]["content"]
    assert text_part == {"type": "text", "text": "describe"}  # image first, then the prompt
    url = image_part["image_url"]["url"]
    prefix = "data:image/png;base64,"
    assert image_part["type"] == "image_url" and url.startswith(prefix)
    back = Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))
    assert back.format == "PNG" and back.size == img.size
    assert list(back.convert("RGB").getdata()) == list(img.getdata())


def test_finish_reason_length_is_truncated():
    with FakeOpenAI(script=[("length", "<think> Okay, let's count")]) as srv:
        r = teacher(srv).complete("cot", "p")
    assert r.truncated and r.text == "<think> Okay, let's count" and r.meta["finish_reason"] == "length"


def test_reasoning_content_becomes_the_think_block():
    with FakeOpenAI(script=[("reasoning", "Okay, 3 red. Wait, yes 3.", " Final Answer: 3"),
                            ("reasoning", "", "Final Answer: 4")]) as srv:
        t = teacher(srv)
        r1, r2 = t.complete("cot", "p"), t.complete("cot", "p")
    assert r1.text == "<think>Okay, 3 red. Wait, yes 3.</think> Final Answer: 3"
    assert r2.text == "Final Answer: 4"  # empty reasoning: no empty think block


def test_api_key(monkeypatch):
    monkeypatch.delenv("VISIONR1_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="VISIONR1_TEST_KEY"):  # hosted API needs a real key
        OpenAITeacher(base_url=None, model="gpt-4o", api_key_env="VISIONR1_TEST_KEY")
    t = OpenAITeacher(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="VISIONR1_TEST_KEY")
    assert t.client.api_key == "EMPTY"  # a local vLLM server takes any key
    monkeypatch.setenv("VISIONR1_TEST_KEY", "sk-test")
    t = OpenAITeacher(base_url=None, model="gpt-4o", api_key_env="VISIONR1_TEST_KEY", max_retries=3, timeout_s=7.0)
    assert (t.client.api_key, t.client.max_retries, t.client.timeout) == ("sk-test", 3, 7.0)


def test_make_teacher_builds_it_from_params():
    t = make_teacher("openai", base_url="http://127.0.0.1:9/v1", model="m", concurrency=4, wrong_rate=0.2, seed=0)
    assert isinstance(t, OpenAITeacher) and t.concurrency == 4 and t.name == "openai"


def test_concurrent_calls_share_one_teacher():
    n = 16
    with FakeOpenAI(script=[("status", 429)] * 3, latency_s=0.1,
                    reply=lambda body: body["messages"][0]["content"][-1]["text"].upper()) as srv:
        t = teacher(srv, concurrency=n)
        with ThreadPoolExecutor(t.concurrency) as pool:
            replies = list(pool.map(lambda i: t.complete("cot", f"q{i}"), range(n)))
    assert [r.text for r in replies] == [f"Q{i}" for i in range(n)]
    assert len(srv.requests) == n + 3  # the three 429s were retried
    assert srv.max_in_flight > n // 2  # served in parallel, not one after another
