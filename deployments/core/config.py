"""One typed config for the whole application: the args of `serve_app.app:build_app`.

Every knob a user would turn lives here with a default that works on a 2-core CPU machine.
Unknown fields are rejected, so a typo fails at start-up with the field's name instead of
being silently ignored. Placement (CPUs, GPUs, accelerator_type, custom resources such as
neuron_cores, runtime_env) is config, never code: profiles in cluster/profiles/ override it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from deployments.core.runtime_env import prepare_runtime_env


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Batching(_Strict):
    """DynamicBatcher settings (deployments/replicas/batcher.py); changeable live through the
    deployment's user_config."""

    max_batch_size: int = Field(8, ge=1, le=1024)
    # How long a batch waits for more rows while the model is free. 0: never (a lone request
    # runs at once); rows that arrive while the model is busy form the next batch anyway.
    batch_wait_timeout_s: float = Field(0.0, ge=0.0, le=10.0)


class Autoscaling(_Strict):
    """Ray Serve autoscaling_config; see Serve's docs for the meaning of each field.

    `policy: queue` replaces Serve's default policy with deployments/replicas/autoscaling_policy.py;
    `upscale_delay_s` and `downscale_delay_s` are then that policy's
    (docs/profiles-and-clusters.md, "The queue policy").
    """

    policy: Literal["ray", "queue"] = Field(
        "ray", description="ray: Serve's default policy; queue: the app's queue policy")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    initial_replicas: int | None = None
    target_ongoing_requests: float = Field(8.0, gt=0)
    upscale_delay_s: float = Field(10.0, ge=0)
    downscale_delay_s: float = Field(60.0, ge=0)
    metrics_interval_s: float | None = Field(
        None, gt=0, description="how often replicas and handles report their load (Serve: 10)")
    look_back_period_s: float | None = Field(
        None, gt=0, description="the window Serve averages that load over (Serve: 30)")

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        interval, window = self.metrics_interval_s, self.look_back_period_s
        if interval is not None and window is not None and window <= interval:
            raise ValueError(f"look_back_period_s ({window}) must exceed metrics_interval_s "
                             f"({interval}): a window holds at least one report")
        return self


class Resources(_Strict):
    """Becomes ray_actor_options: what one replica reserves and where it may run."""

    num_cpus: float = Field(0.5, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    accelerator_type: str | None = None
    memory: int | None = Field(None, ge=0, description="bytes")
    resources: dict[str, float] = Field(default_factory=dict)
    runtime_env: dict[str, Any] | None = Field(
        None, description="Ray runtime_env; ${VAR} in its strings is expanded at build time")

    def ray_actor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        for key in ("accelerator_type", "memory"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        if self.runtime_env is not None:
            options["runtime_env"] = prepare_runtime_env(self.runtime_env)
        if self.resources:
            options["resources"] = dict(self.resources)
        return options


class DeploymentSettings(_Strict):
    """What every model deployment has: replicas, concurrency, resources, batching."""

    num_replicas: int = Field(1, ge=1)
    autoscaling: Autoscaling | None = None
    max_ongoing_requests: int = Field(32, ge=1)
    max_queued_requests: int = Field(
        256, ge=-1, description="requests waiting in routers beyond max_ongoing_requests; past "
        "it the ingress answers 429 with a Retry-After from this group's drain rate")
    health_check_period_s: float = Field(10.0, gt=0)
    health_check_timeout_s: float = Field(
        30.0, gt=0, description="a replica whose event loop does not answer its health check "
        "within this is replaced")
    model_call_timeout_s: float = Field(
        300.0, gt=0, description="a replica whose model thread is busy with one call for longer "
        "fails its health check and is replaced")
    resources: Resources = Field(default_factory=Resources)
    batching: Batching = Field(default_factory=Batching)


class TextEngineConfig(_Strict):
    """The text engine and its arguments; each engine maps them in its own module.

    Every engine batches continuously: transformers through its own scheduler, run by the
    deployment on its model thread; vllm, tensorrt_llm and neuron (vLLM with the Neuron plugin)
    inside their own engine loop.
    """

    name: Literal["transformers", "vllm", "tensorrt_llm", "neuron"] = "transformers"
    model: str = Field("smollm2-135m-instruct", description="model store name or a path")
    served_model_name: str = "smollm2-135m-instruct"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "auto", description="auto: chosen at start from the CPU's flags, bfloat16 with "
        "AVX512-BF16 or AMX, else float32 (deployments/core/precision.py); vllm on a GPU, "
        "tensorrt_llm and neuron: the engine's own auto (the checkpoint's dtype); a value "
        "forces it")
    threads: int = Field(1, ge=1)
    max_prompt_tokens: int = Field(2048, ge=16)
    quantization: str | None = Field(
        None, description="transformers: int8 (dynamic, Linear layers); vllm/neuron: a vLLM "
        "quantization method; tensorrt_llm: a QuantAlgo name such as FP8")
    max_model_len: int | None = Field(None, ge=16, description="prompt + answer tokens")
    max_num_seqs: int = Field(32, ge=1, description="sequences decoded together (vllm, trt)")
    enforce_eager: bool = Field(False, description="vllm: skip torch.compile / CUDA graphs")
    enable_prefix_caching: bool = True
    prefix_cache_mib: int = Field(256, ge=0, description="transformers: KV of prompt prefixes")
    attention: Literal["auto", "sdpa", "eager"] = Field(
        "auto", description="transformers: attention kernels; auto = sdpa in float32, eager "
        "(measured faster on CPU) in bfloat16")
    max_prefill_tokens_per_step: int = Field(
        512, ge=1, description="transformers: prompt tokens admitted between two decode steps "
        "(at least one prompt), so new prompts cannot stall running streams for long")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="share for weights+KV")
    cpu_kvcache_space_gb: float | None = Field(None, gt=0, description="vllm on CPU: KV GiB")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs, or NeuronCores for neuron")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="passed as-is to engines that take extra arguments"
    )


class TextSettings(DeploymentSettings):
    engine: TextEngineConfig = Field(default_factory=TextEngineConfig)
    default_max_tokens: int = Field(128, ge=1)
    max_tokens_limit: int = Field(1024, ge=1)
    max_prompt_chars: int = Field(
        32768, ge=1, description="characters of all messages together, checked at the ingress "
        "before tokenizing; engine.max_prompt_tokens is checked after")
    routing: Literal["default", "prefix", "ray_prefix"] = Field(
        "prefix", description="default: Serve's power of two choices; prefix: each "
        "conversation to one replica, whose prefix cache holds its earlier turns "
        "(deployments/replicas/prefix_router.py); ray_prefix: Ray's "
        "PrefixCacheAffinityRouter, adapted")
    routing_imbalanced_threshold: float = Field(
        8, ge=0, description="prefix routing: requests the chosen replica may hold beyond the "
        "least loaded one before the least loaded gets the request instead")


class VisionEngineConfig(_Strict):
    """open_clip runs on CPU/GPU; neuron traces the image tower for Inferentia."""

    name: Literal["open_clip", "neuron"] = "open_clip"
    arch: str = "ViT-B-32"
    checkpoint: str | None = Field(
        None, description="open_clip `pretrained=` (a file or tag); None uses the model store"
    )
    served_model_name: str = "clip-vit-b-32"
    dtype: Literal["float32", "bfloat16", "auto"] = Field(
        "auto", description="auto: chosen at start, on a CPU bfloat16 with AVX512-BF16 or "
        "AMX, else float32; on CUDA bfloat16 where the GPU has it; neuron: bfloat16; a value "
        "forces it")
    device: Literal["cpu", "cuda"] = "cpu"
    quantization: Literal["int8"] | None = Field(
        None, description="int8: dynamic int8 Linear layers (CPU); open_clip engine only")
    threads: int = Field(1, ge=1)
    torchscript: bool = Field(
        True, description="open_clip: run the image tower as a frozen TorchScript trace, whose "
        "forward releases the GIL, so request handling in the replica never stalls it")
    neuron_batch_size: int = Field(8, ge=1, description="neuron: batch the tower is traced for")


class VisionSettings(DeploymentSettings):
    engine: VisionEngineConfig = Field(default_factory=VisionEngineConfig)
    batching: Batching = Field(default_factory=lambda: Batching(max_batch_size=16))
    max_inputs: int = Field(256, ge=1, description="inputs per embeddings request")
    max_text_chars: int = Field(2048, ge=1, description="characters per text input")
    max_image_pixels: int = Field(
        16_777_216, ge=1, description="width x height, read from the image header before "
        "decoding (4096 x 4096 by default)")
    max_labels: int = Field(64, ge=1, description="zero-shot labels per pipeline request")
    max_label_chars: int = Field(200, ge=1, description="characters per label")


class AudioEngineConfig(_Strict):
    name: Literal["faster_whisper"] = "faster_whisper"
    model: str = "whisper-base"
    served_model_name: str = "whisper-base"
    compute_type: str = Field(
        "auto", description="CTranslate2 compute type; auto: chosen at start, int8 on x86 "
        "with AVX2, else float32; float16 on CUDA; a value (int8, float32, int8_float16...) "
        "forces it")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: int = Field(1, ge=1)
    beam_size: int = Field(1, ge=1)


class AudioSettings(DeploymentSettings):
    engine: AudioEngineConfig = Field(default_factory=AudioEngineConfig)
    batching: Batching = Field(default_factory=lambda: Batching(max_batch_size=8))
    max_duration_s: float = Field(600.0, gt=0)


class ApiKeys(_Strict):
    """Where the ingress reads its API keys: never the keys themselves, so none sits in a profile.

    `env` names an environment variable of the ingress's Ray node holding comma-separated keys;
    `file` is a path on that node with one key per line. Keys from both are accepted. With no
    key found the API is anonymous, which only a loopback bind (or allow_anonymous) permits.
    """

    env: str | None = "MMSERVE_API_KEYS"
    file: str | None = None


class IngressSettings(_Strict):
    max_body_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_media_parts: int = Field(4, ge=0, description="image_url and input_audio parts per chat "
                                 "request, each perceived by the pipeline's stages")
    max_json_depth: int = Field(
        32, ge=2, le=256, description="nesting of arrays and objects in a body (json.loads "
        "itself stops near 1000 levels, at Python's recursion limit)")
    request_timeout_s: float = Field(
        120.0, gt=0, description="each request's deadline, carried through every stage into the "
        "replicas; a client may shorten it with the X-Request-Timeout header (seconds)")
    stream_idle_timeout_s: float = Field(
        30.0, gt=0, description="a stream with no token for this long ends with an error event")
    max_concurrent_requests: int = Field(
        128, ge=1, description="requests one ingress replica works on at once; past it, 429")
    retry_idempotent: bool = Field(
        True, description="retry embeddings, transcriptions and pipeline perception once, "
        "within the deadline, when their replica died")
    api_keys: ApiKeys = Field(default_factory=ApiKeys)
    allow_anonymous: bool = Field(
        False, description="serve without API keys on a non-loopback HTTP bind (say it out loud)")
    max_ongoing_requests: int = Field(
        256, ge=1, description="Serve's cap per ingress replica; keep it above "
        "max_concurrent_requests so that the excess gets the ingress's 429, not a queue")
    max_queued_requests: int = Field(
        128, ge=-1, description="requests Serve's proxy holds for the ingress; past it, 503")
    num_cpus: float = Field(0.0, ge=0)
    num_replicas: int = Field(1, ge=1)
    autoscaling: Autoscaling | None = None


class FromEnv(_Strict):
    """A secret read from an environment variable of the ingress's Ray node, never written in a
    profile: `redis_url: {env: MMSERVE_REDIS_URL}`."""

    env: str = Field(min_length=1)


class CacheSettings(_Strict):
    """The response cache at the ingress (serve_app/cache.py): exact-match answers, keyed by
    model, model version, every argument the replica gets, and the sha256 of the input bytes.

    Off by default: a cache changes what a benchmark or a load test with repeated inputs
    measures. In process (one LRU per ingress replica, bounded by bytes) unless `redis_url` is
    set; then one Redis shared by every ingress replica, bounded by Redis's own `maxmemory`.
    """

    enabled: bool = False
    embeddings: bool = Field(True, description="cache each input of /v1/embeddings")
    transcriptions: bool = Field(True, description="cache /v1/audio/transcriptions")
    chat: bool = Field(False, description="cache /v1/chat/completions at temperature 0, "
                       "not streamed (opt-in: a deterministic answer is the engine's promise)")
    ttl_s: float = Field(3600.0, gt=0, description="an entry's lifetime")
    max_bytes: int = Field(256 * 1024 * 1024, ge=0, description="in process: keys and values "
                           "held per ingress replica; least recently used go first")
    max_item_bytes: int = Field(4 * 1024 * 1024, ge=0, description="larger answers are not "
                                "stored (both backends)")
    version: str = Field("", description="salt of every key: change it when the weights behind "
                         "an unchanged engine config change")
    redis_url: str | FromEnv | None = Field(
        None, description="redis://HOST:PORT/DB; a URL with a password only as {env: NAME}")
    key_prefix: str = Field("mmserve:cache", min_length=1)
    redis_timeout_s: float = Field(0.25, gt=0, description="connect and socket timeout; past "
                                   "it the request computes its answer")
    redis_retry_s: float = Field(5.0, ge=0, description="after a Redis failure, requests skip "
                                 "Redis for this long before trying it again")

    @field_validator("redis_url")
    @classmethod
    def _no_password_in_config(cls, value: str | FromEnv | None) -> str | FromEnv | None:
        if isinstance(value, str):
            if not value.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("must start with redis://, rediss:// or unix://")
            if "@" in value.split("://", 1)[1].split("/", 1)[0]:
                raise ValueError("holds a password: give it as {env: NAME}, an environment "
                                 "variable of the ingress's node, never in a profile")
        return value


class Tracing(_Strict):
    """OpenTelemetry spans of each request's stages (serve_app/tracing.py), made at the ingress
    from the same timings as Server-Timing. Off by default."""

    enabled: bool = False
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces (needs "
        "opentelemetry-exporter-otlp-proto-http); none: spans are made and dropped")
    service_name: str = Field("mmserve", min_length=1)


class Slo(_Strict):
    """The latency each route promises; `ray_mmserve_slo_requests_total{met}` counts against
    it, so goodput is the rate of met="true"."""

    ttft_s: float = Field(2.0, gt=0, description="streams: time to the first token")
    latency_s: dict[str, float] = Field(
        default_factory=lambda: {"/v1/chat/completions": 30.0, "/v1/embeddings": 2.0,
                                 "/v1/audio/transcriptions": 15.0, "/v1/pipeline": 30.0},
        description="whole answers: arrival to answer, by route; a route not named has none")


class Observability(_Strict):
    server_timing: bool = Field(
        True, description="a Server-Timing header on every response (and the stream's final "
        "event): each stage's time, from the ingress and from the replicas")
    metrics: bool = Field(True, description="the app's own ray_mmserve_* metrics")
    tracing: Tracing = Field(default_factory=Tracing)
    slo: Slo = Field(default_factory=Slo)


class AppConfig(_Strict):
    model_dir: str | None = Field(None, description="model store; default $MMSERVE_MODEL_DIR")
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    observability: Observability = Field(default_factory=Observability)
    text: TextSettings = Field(default_factory=TextSettings)
    vision: VisionSettings = Field(default_factory=VisionSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)


class ConfigError(ValueError):
    """An invalid app config, with every bad field named."""


def load_config(args: dict[str, Any] | None) -> AppConfig:
    """Validates builder args; raises ConfigError naming each bad field by its dotted path."""
    try:
        return AppConfig.model_validate(args or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid app config: {problems}") from None
