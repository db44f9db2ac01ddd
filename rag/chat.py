"""The chat-model seam: one LangChain ``BaseChatModel`` per configured backend.

``create_chat_model`` picks the backend from ``LLMSettings``:

- ``llamacpp`` (default): the packaged GGUF, embedded through llama-cpp-python.
- ``ollama``: an Ollama server, through ``langchain-ollama``.
- ``openai``: any OpenAI-compatible server (vLLM, llama.cpp server, ...), through ``langchain-openai``.
- ``scripted``: a deterministic fake for tests.

Callers stream answers with ``stream_text``, which turns backend failures into ``BackendError``.
"""

from __future__ import annotations

import errno
import re
import secrets
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
)
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from rag.config import LLMSettings
from rag.errors import BackendError, HauswissenError, ModelNotFoundError
from rag.models import ASSEMBLE_HINT, default_llm_path

__all__ = [
    "LlamaCppChatModel",
    "LocalChatModel",
    "ScriptedChatModel",
    "create_chat_model",
    "stream_text",
]


class LocalChatModel(BaseChatModel):
    """A chat model that runs in this process and serves one generation at a time.

    Subclasses implement ``_stream_unlocked``. A lock is held from the first chunk until the stream
    is exhausted, fails or is closed, so two Streamlit sessions never share one model context.
    """

    wait_timeout_s: float = Field(120.0, gt=0, description="How long a request waits for a busy model.")

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def is_busy(self) -> bool:
        """Whether a generation currently holds the model."""
        return self._lock.locked()

    @property
    def _model_name(self) -> str:
        return self._llm_type

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self._llm_type
        params.setdefault("ls_model_name", self._model_name)
        return params

    def _stream_unlocked(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        **kwargs: Any,
    ) -> Iterator[str]:
        raise NotImplementedError

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if not self._lock.acquire(timeout=self.wait_timeout_s):
            raise BackendError(
                f"the local language model is still busy with another answer after "
                f"{self.wait_timeout_s:.0f} s; try again in a moment"
            )
        pieces = None
        try:
            pieces = self._stream_unlocked(messages, stop, **kwargs)
            for piece in pieces:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager is not None:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        finally:
            if pieces is not None and hasattr(pieces, "close"):
                pieces.close()
            self._lock.release()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))


Responder = Callable[[list[BaseMessage]], str]

_FIRST_SOURCE = re.compile(r'<source id="1"[^>]*>\n(.*?)\n</source>', re.DOTALL)


def echo_first_source(messages: list[BaseMessage]) -> str:
    """Scripted reply for demos and UI tests: the first sentence of source 1, cited as [1].

    A prompt without sources that ends in a question (the follow-up rewrite) gets that question back.
    """
    match = _FIRST_SOURCE.search(str(messages[-1].content)) if messages else None
    if match is None and messages and "<source" not in str(messages[-1].content):
        last = str(messages[-1].content).strip().splitlines()[-1:]
        if last and ":" in last[0]:
            return last[0].split(":", 1)[1].strip()
    if match is None:
        return "Dazu finde ich in den Dokumenten keine Antwort."
    sentence = re.split(r"(?<=[.!?])\s", " ".join(match.group(1).split()), maxsplit=1)[0]
    return f"{sentence} [1]"


class ScriptedChatModel(LocalChatModel):
    """A deterministic chat model for tests: streams scripted replies word by word.

    Replies come from ``respond(messages)`` if given, otherwise from ``replies`` in turn (cycling).
    Every call's messages are recorded in ``calls``.

    Attributes:
        replies: Fixed replies, used in order.
        respond: Computes a reply from the messages; takes precedence over ``replies``.
        error: Raised after the first chunk, to exercise failure paths.
        token_delay_s: Seconds to sleep before each piece, to simulate a slow model.
        calls: The message lists received so far.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[str] = Field(default_factory=lambda: ["Scripted answer [1]."])
    respond: Responder | None = None
    error: Exception | None = None
    token_delay_s: float = Field(0.0, ge=0)
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _next_reply(self, messages: list[BaseMessage]) -> str:
        if self.respond is not None:
            return self.respond(messages)
        if not self.replies:
            return ""
        return self.replies[len(self.calls) % len(self.replies)]

    def _stream_unlocked(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        **kwargs: Any,
    ) -> Iterator[str]:
        reply = self._next_reply(messages)
        self.calls.append(list(messages))
        pieces = re.findall(r"\s*\S+|\s+", reply)
        for i, piece in enumerate(pieces):
            if self.error is not None and i == 1:
                raise self.error
            if self.token_delay_s:
                time.sleep(self.token_delay_s)
            yield piece
        if self.error is not None:
            raise self.error


_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def _to_openai_dict(message: BaseMessage) -> dict[str, str]:
    role = message.role if isinstance(message, ChatMessage) else _ROLES.get(message.type, "user")
    return {"role": role, "content": str(message.text)}


def _lean_state_saver(llama: Any) -> Callable[[], Any]:
    """``Llama.save_state`` without its copy of the logits of every prompt position.

    llama-cpp-python 0.3.36 saves, with each cached state, the logits of up to ``n_batch`` positions
    (512 x 152k floats, ~300 MB for the Qwen2.5 default, ~1.5 s to copy after every answer) and leaves
    them out of the cache's size, so 256 MB held ~10 states in ~2.5 GB. Without ``logits_all`` those rows
    are never read: sampling happens inside llama.cpp, and restoring a state re-evaluates its last token
    (``load_state`` sets ``_requires_eval``). One row keeps the shape ``load_state`` broadcasts into.
    """
    import ctypes

    from llama_cpp import LlamaState
    from llama_cpp import llama_cpp as lib

    def save_state() -> LlamaState:
        size = lib.llama_state_get_size(llama._ctx.ctx)
        buffer = (ctypes.c_uint8 * int(size))()
        n_bytes = int(lib.llama_state_get_data(llama._ctx.ctx, buffer, size))
        if n_bytes > int(size):
            raise RuntimeError("llama.cpp wrote more state than it announced")
        return LlamaState(
            scores=llama._scores[-1:].copy(),
            input_ids=llama.input_ids.copy(),
            n_tokens=llama.n_tokens,
            llama_state=ctypes.string_at(buffer, n_bytes),
            llama_state_size=n_bytes,
            seed=llama._seed,
        )

    return save_state


class LlamaCppChatModel(LocalChatModel):
    """A GGUF chat model embedded through llama-cpp-python.

    The model is loaded on first use and kept by this object: create one per process and cache it.

    Attributes:
        model_path: The GGUF file.
        n_ctx: Context window in tokens.
        n_threads: CPU threads for generating tokens.
        n_threads_batch: CPU threads for reading the prompt (0 = same as ``n_threads``).
        temperature: Sampling temperature.
        seed: Sampling seed for every answer (None: a new random one for each).
        max_tokens: Upper bound on generated tokens.
        prompt_cache_mb: RAM for saved model states (0 = none). llama.cpp by itself reuses only the
            previous prompt's common prefix; a differently prompted call in between (a follow-up's
            rewrite) would make the next answer re-read the system prompt and worked example. With
            saved states the answer resumes from the longest cached prefix instead.
    """

    model_path: Path
    n_ctx: int = 4096
    n_threads: int = 1
    n_threads_batch: int = 0
    temperature: float = 0.1
    seed: int | None = None
    max_tokens: int = 400
    prompt_cache_mb: int = 0

    _llama: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    @property
    def _model_name(self) -> str:
        return self.model_path.name

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": str(self.model_path), "n_ctx": self.n_ctx, "n_threads": self.n_threads}

    def load(self) -> None:
        """Load the weights now instead of on the first question (e.g. at start-up).

        Raises:
            ModelNotFoundError: the GGUF file or llama-cpp-python is missing.
            BackendError: llama.cpp cannot load the file.
        """
        with self._lock:
            self._load()

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text`` in this model's vocabulary (loads the model if needed).

        Args:
            text: Any text.
            special: Parse control tokens such as ``<|im_start|>`` as single tokens.
        """
        if self._llama is None:
            self.load()
        tokens: list[int] = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=special)
        return tokens

    def get_num_tokens(self, text: str) -> int:
        """Exact token count with the model's own tokenizer (LangChain's default would fetch GPT-2's)."""
        return len(self.tokenize(text))

    def _load(self) -> Any:
        if self._llama is not None:
            return self._llama
        if not self.model_path.is_file():
            raise ModelNotFoundError(f"model file {self.model_path} not found; {ASSEMBLE_HINT}")
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ModelNotFoundError(
                "llama-cpp-python is not installed: pip install 'llama-cpp-python[server]==0.3.36'"
            ) from e
        try:
            # n_threads_batch would default to every core; set it explicitly from the settings.
            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads_batch or self.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise BackendError(f"cannot load the language model {self.model_path}: {e}") from e
        if self.prompt_cache_mb:
            from llama_cpp import LlamaRAMCache

            if not self._llama._logits_all:  # with every position's logits kept, they are needed
                self._llama.save_state = _lean_state_saver(self._llama)
            self._llama.set_cache(LlamaRAMCache(capacity_bytes=self.prompt_cache_mb << 20))
        return self._llama

    def _stream_unlocked(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        **kwargs: Any,
    ) -> Iterator[str]:
        llama = self._load()
        completion = llama.create_chat_completion(
            messages=[_to_openai_dict(m) for m in messages],
            stream=True,
            temperature=kwargs.get("temperature", self.temperature),
            # llama.cpp's own choice for None is a fixed chain from its default seed: draw here instead.
            seed=kwargs.get("seed", self.seed if self.seed is not None else secrets.randbelow(2**31)),
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            stop=stop,
        )
        try:
            for part in completion:
                text = part["choices"][0]["delta"].get("content")
                if text:
                    yield text
        finally:
            completion.close()


def _llamacpp(settings: LLMSettings, models_dir: Path) -> LlamaCppChatModel:
    path = settings.model_path or default_llm_path(models_dir)
    if not Path(path).is_file():
        where = "llm.model_path" if settings.model_path else "the packaged default model"
        raise ModelNotFoundError(f"{where} {path} not found; {ASSEMBLE_HINT}")
    return LlamaCppChatModel(
        model_path=Path(path),
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_threads_batch=settings.n_threads_batch,
        temperature=settings.temperature,
        seed=settings.seed,
        max_tokens=settings.max_tokens,
        prompt_cache_mb=settings.prompt_cache_mb,
        wait_timeout_s=settings.timeout_s,
    )


def _ollama(settings: LLMSettings) -> BaseChatModel:
    try:
        from langchain_ollama import ChatOllama
    except ImportError as e:
        raise ModelNotFoundError("the ollama backend needs: pip install langchain-ollama") from e
    return ChatOllama(
        model=settings.model,
        base_url=settings.base_url,
        temperature=settings.temperature,
        seed=settings.seed,
        num_predict=settings.max_tokens,
        num_ctx=settings.n_ctx,
        client_kwargs={"timeout": settings.timeout_s},
    )


def _openai(settings: LLMSettings) -> BaseChatModel:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as e:
        raise ModelNotFoundError("the openai backend needs: pip install langchain-openai") from e
    key = settings.api_key.get_secret_value() or "sk-no-key"
    return ChatOpenAI(
        model=settings.model,
        base_url=settings.base_url,
        api_key=key,
        temperature=settings.temperature,
        seed=settings.seed,
        max_completion_tokens=settings.max_tokens,
        # llama.cpp's server and older vLLM ignore max_completion_tokens; the old name is understood by all.
        extra_body={"max_tokens": settings.max_tokens},
        timeout=settings.timeout_s,
        max_retries=1,
        streaming=True,
    )


def create_chat_model(settings: LLMSettings, models_dir: Path) -> BaseChatModel:
    """Build the chat model that ``settings.backend`` names.

    Args:
        settings: The ``llm`` section of the configuration.
        models_dir: Where the packaged default GGUF was assembled (``llamacpp`` with no model_path).

    Returns:
        A LangChain chat model. Cache it: the ``llamacpp`` model loads its weights on first use.

    Raises:
        ModelNotFoundError: the GGUF file or the backend's package is missing.
    """
    if settings.backend == "llamacpp":
        return _llamacpp(settings, models_dir)
    if settings.backend == "ollama":
        return _ollama(settings)
    if settings.backend == "openai":
        return _openai(settings)
    if settings.backend == "scripted":
        return ScriptedChatModel(wait_timeout_s=settings.timeout_s, respond=echo_first_source)
    raise ModelNotFoundError(f"unknown llm backend {settings.backend!r}")


def _where(model: BaseChatModel) -> str:
    if isinstance(model, LlamaCppChatModel):
        return f"the language model {model.model_path.name}"
    url = getattr(model, "base_url", None) or getattr(model, "openai_api_base", None)
    return f"the language model at {url}" if url else "the language model"


def _network_error_types() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(unreachable, failed) exception types of the installed HTTP clients."""
    unreachable: list[type[BaseException]] = [ConnectionError, TimeoutError]
    failed: list[type[BaseException]] = []
    try:
        import httpx

        unreachable += [httpx.ConnectError, httpx.TimeoutException]
        failed.append(httpx.HTTPError)
    except ImportError:
        pass
    try:
        import openai

        unreachable.append(openai.APIConnectionError)
        failed.append(openai.APIError)
    except ImportError:
        pass
    try:
        import ollama

        failed.append(ollama.ResponseError)
    except ImportError:
        pass
    return tuple(unreachable), tuple(failed)


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    node: BaseException | None = error
    while node is not None and node not in chain:
        chain.append(node)
        node = node.__cause__ or node.__context__
    return chain


def _plain_reason(error: BaseException, *, deepest: bool) -> str:
    """A short reason: "connection refused" when that is what happened, else an error's message.

    Connection failures read best from the innermost error (the socket's), server errors from the
    outermost (the client's summary of the reply).
    """
    chain = _chain(error)
    if any(isinstance(e, OSError) and e.errno == errno.ECONNREFUSED for e in chain):
        return "connection refused"
    messages = [str(e) for e in chain if str(e)]
    if not messages:
        return type(error).__name__
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", messages[-1] if deepest else messages[0]).strip()
    return "connection refused" if "connection refused" in reason.lower() else reason


def stream_text(
    model: BaseChatModel, messages: LanguageModelInput, **kwargs: Any
) -> Generator[str, None, None]:
    """Stream a reply as text pieces, turning backend failures into ``BackendError``.

    Args:
        model: A chat model from ``create_chat_model``.
        messages: LangChain messages (or anything ``model.stream`` accepts).
        **kwargs: Passed to ``model.stream`` (e.g. ``stop``).

    Yields:
        Non-empty pieces of the reply, in order. Close the generator when stopping early: that ends
        the request and frees a local model for the next user at once.

    Raises:
        BackendError: the server is unreachable, answered with an error, or the local model failed.
        ModelNotFoundError: the model file or backend package is missing.
    """
    unreachable, failed = _network_error_types()
    stream = model.stream(messages, **kwargs)
    try:
        for chunk in stream:
            text = chunk.text
            if text:
                yield str(text)
    except HauswissenError:
        raise
    except unreachable as e:
        raise BackendError(f"{_where(model)} is not reachable: {_plain_reason(e, deepest=True)}") from e
    except failed as e:
        reason = _plain_reason(e, deepest=False)
        raise BackendError(f"{_where(model)} answered with an error: {reason}") from e
    except (ValueError, RuntimeError, OSError) as e:
        raise BackendError(f"{_where(model)} failed: {_plain_reason(e, deepest=False)}") from e
    finally:
        # Closing at once releases a local model's lock even if the caller stops reading early.
        close = getattr(stream, "close", None)
        if close is not None:
            close()
