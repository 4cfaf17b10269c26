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

from deployments.core.audio_windows import default_windows_per_call, windows_for_seconds
from deployments.core.media_formats import DEFAULT_AUDIO_FORMATS, DEFAULT_IMAGE_FORMATS
from deployments.core.redis_url import check_redis_url
from deployments.core.runtime_env import prepare_runtime_env


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Batching(_Strict):
    """DynamicBatcher settings (deployments/replicas/batcher.py); changeable live through the
    deployment's user_config."""

    max_batch_size: int = Field(
        8, ge=1, le=1024, description="requests per model call, live-tunable; for the "
        "transformers text engine, the rows its scheduler decodes together")
    batch_wait_timeout_s: float = Field(
        0.0, ge=0.0, le=10.0, description="how long a batch waits to fill while the model is "
        "free, counted from the oldest request's arrival, live-tunable; 0: a lone request runs "
        "at once (rows that arrive while the model is busy form the next batch anyway; the "
        "transformers text engine never waits: a request joins at the next decode step)")
    max_waiting_items: int | None = Field(
        None, ge=1, description="items (images, texts, clips) one vision or audio batcher "
        "holds waiting for the model, live-tunable; one more turns away the item served last "
        "(batch before interactive, then the tenant furthest past its fair share, its newest) "
        "with 429 and a Retry-After. Keep max_ongoing_requests above it plus max_batch_size: "
        "a flood then waits here, in class and fair-share order, rather than in arrival order "
        "in Serve's router queue (docs/scheduling.md). Unset: no limit but "
        "max_ongoing_requests; the text engines keep their own queues")


class Autoscaling(_Strict):
    """Ray Serve autoscaling_config; see Serve's docs for the meaning of each field.

    `policy: queue` replaces Serve's default policy with deployments/replicas/autoscaling_policy.py;
    `upscale_delay_s` and `downscale_delay_s` are then that policy's
    (docs/profiles-and-clusters.md, "The queue policy").
    """

    policy: Literal["ray", "queue"] = Field(
        "ray", description="ray: Serve's default policy; queue: the app's queue policy, which "
        "takes the two delays itself (docs/profiles-and-clusters.md)")
    min_replicas: int = Field(1, ge=0, description="the fewest replicas the group scales to")
    max_replicas: int = Field(1, ge=1, description="the most replicas the group scales to")
    initial_replicas: int | None = Field(
        None, description="replicas at deploy time; unset: min_replicas")
    target_ongoing_requests: float = Field(
        8.0, gt=0, description="requests per replica (running and queued) the policy aims at")
    upscale_delay_s: float = Field(
        10.0, ge=0, description="how long the load must call for more replicas before one is "
        "added")
    downscale_delay_s: float = Field(
        60.0, ge=0, description="how long the load must call for fewer replicas before one is "
        "removed")
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

    num_cpus: float = Field(0.5, ge=0, description="logical CPUs one replica reserves")
    num_gpus: float = Field(0.0, ge=0, description="GPUs one replica reserves (a fraction "
                            "shares one)")
    accelerator_type: str | None = Field(
        None, description="the accelerator the replica must land on, e.g. A100, L4, A10G")
    memory: int | None = Field(None, ge=0, description="bytes of memory one replica reserves")
    resources: dict[str, float] = Field(
        default_factory=dict, description="custom resources, e.g. {neuron_cores: 2}")
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


class Canary(_Strict):
    """A canary of a replica group: the group's settings with `overrides` applied, deployed as
    a second deployment that takes `weight` of the group's calls."""

    weight: float = Field(gt=0, lt=1, description="the share of the group's calls the canary "
                          "takes, each call drawn at random")
    overrides: dict[str, Any] = Field(
        description="fields of the group's settings the canary changes, nested as in the "
        "group (e.g. {version: v2, engine: {model: NEW}}); validated as the group's own")


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied: nested dicts merged key by key, other values replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class DeploymentSettings(_Strict):
    """What every model group (text, vision, audio) has: replicas, concurrency, resources,
    batching."""

    num_replicas: int = Field(
        1, ge=1, description="fixed replica count, used when autoscaling is unset")
    autoscaling: Autoscaling | None = Field(
        None, description="Serve's autoscaling_config for the group; unset: num_replicas")
    max_ongoing_requests: int = Field(
        32, ge=1, description="requests one replica holds at once; keep it at least the batch "
        "size (Serve's default of 5 caps batches at 5)")
    max_queued_requests: int = Field(
        256, ge=-1, description="requests waiting in routers beyond max_ongoing_requests; past "
        "it the ingress answers 429 with a Retry-After from this group's drain rate")
    health_check_period_s: float = Field(
        2.0, gt=0, description="how often Serve checks each replica's health; Serve learns "
        "that a replica's process died only from its next check, so this bounds how long the "
        "group waits before the replacement starts (Serve's default is 10 s)")
    health_check_timeout_s: float = Field(
        30.0, gt=0, description="a replica whose event loop does not answer its health check "
        "within this is replaced")
    model_call_timeout_s: float = Field(
        300.0, gt=0, description="a replica whose model thread is busy with one call for longer "
        "fails its health check and is replaced")
    resources: Resources = Field(
        default_factory=Resources, description="what one replica reserves (ray_actor_options)")
    batching: Batching = Field(
        default_factory=Batching, description="the dynamic batcher, live-tunable")
    version: str = Field(
        "", max_length=64, description="the name of what this group serves (e.g. the model's "
        "revision): the `version` label of its call metrics, and part of its response-cache "
        "keys, so answers of another version are never served from the cache; change it when "
        "the weights behind an unchanged engine config change")
    max_surge_percent: int = Field(
        100, ge=0, le=100, description="extra replicas a rollout may start, as a percentage of "
        "num_replicas (Serve's max_surge_percent): above 0 the old replicas serve until their "
        "replacements are ready; 0 stops old replicas first (a group of one has none for its "
        "replacement's start). Needs room for the extra replicas' resources")
    canary: Canary | None = Field(
        None, description="a second version of the group, deployed beside it as "
        "`<deployment>-canary`, that takes `weight` of the group's calls; a deploy without it "
        "removes it (with its overrides moved into the group: promoted) (docs/operations.md)")

    @model_validator(mode="after")
    def _canary_is_another_version(self) -> DeploymentSettings:
        if self.canary is not None:
            self.canary_settings()  # its overrides validate as the group's own settings
        return self

    def canary_settings(self) -> DeploymentSettings | None:
        """The group's settings with the canary's overrides applied (no canary of its own);
        None without a canary. A ValueError names an override that is not a valid setting or
        a canary that changes nothing."""
        if self.canary is None:
            return None
        if "canary" in self.canary.overrides:
            raise ValueError("canary.overrides cannot hold a canary")
        base = self.model_dump(exclude={"canary"})
        merged = _deep_merge(base, self.canary.overrides)
        if merged == base:
            raise ValueError("canary.overrides change nothing: a canary must be another version")
        try:
            return type(self).model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                                 for err in exc.errors())
            raise ValueError(f"canary.overrides: {problems}") from None

    @model_validator(mode="after")
    def _queue_within_reach(self) -> DeploymentSettings:
        waiting, batch = self.batching.max_waiting_items, self.batching.max_batch_size
        if waiting is not None and self.max_ongoing_requests < waiting + batch:
            raise ValueError(
                f"max_ongoing_requests ({self.max_ongoing_requests}) must be at least "
                f"batching.max_waiting_items + max_batch_size ({waiting + batch}): otherwise "
                f"requests wait in Serve's router queue, in arrival order, before the "
                f"replica's queue is full")
        return self


class TextEngineConfig(_Strict):
    """The text engine and its arguments; each engine maps them in its own module.

    Every engine batches continuously: transformers through its own scheduler, run by the
    deployment on its model thread; vllm, tensorrt_llm and neuron (vLLM with the Neuron plugin)
    inside their own engine loop.
    """

    name: Literal["transformers", "vllm", "tensorrt_llm", "neuron"] = Field(
        "transformers", description="the engine (the cpu profile: vllm); docs/engines.md")
    model: str = Field("smollm2-135m-instruct", description="model store name or a path")
    served_model_name: str = Field(
        "smollm2-135m-instruct", description="the model name clients ask for")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "auto", description="auto: chosen at start from the CPU's flags, bfloat16 with "
        "AVX512-BF16 or AMX, else float32 (deployments/core/precision.py); vllm on a GPU, "
        "tensorrt_llm and neuron: the engine's own auto (the checkpoint's dtype); a value "
        "forces it")
    threads: int = Field(1, ge=1, description="torch threads per replica")
    max_prompt_tokens: int = Field(2048, ge=16, description="longer prompts get 400")
    quantization: str | None = Field(
        None, description="transformers: int8 (dynamic, Linear layers); vllm/neuron: a vLLM "
        "quantization method; tensorrt_llm: a QuantAlgo name such as FP8")
    max_model_len: int | None = Field(None, ge=16, description="prompt + answer tokens")
    max_num_seqs: int = Field(32, ge=1, description="sequences decoded together (vllm, trt)")
    enforce_eager: bool = Field(False, description="vllm: skip torch.compile / CUDA graphs")
    enable_prefix_caching: bool = Field(
        True, description="reuse the KV of prompt prefixes (a shared system prompt, earlier "
        "turns)")
    prefix_cache_mib: int = Field(
        256, ge=0, description="transformers: MiB of prompt-prefix KV kept per replica")
    attention: Literal["auto", "sdpa", "eager"] = Field(
        "auto", description="transformers: attention kernels; auto = sdpa in float32, eager "
        "(measured faster on CPU) in bfloat16")
    max_prefill_tokens_per_step: int = Field(
        512, ge=1, description="transformers: prompt tokens admitted between two decode steps "
        "(at least one prompt), so new prompts cannot stall running streams for long")
    queue_policy: Literal["fifo", "slo"] | None = Field(
        None, description="the order requests waiting for their prefill are served in: fifo "
        "by arrival; slo the earliest objective first (requests without one last, ties by "
        "arrival); unset: slo.scheduling. transformers: its scheduler's waiting list; vllm: "
        "vLLM's priority scheduling (engine_kwargs' scheduling_policy wins); tensorrt_llm and "
        "neuron: always fifo (docs/engines.md)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="share for weights+KV")
    cpu_kvcache_space_gb: float | None = Field(None, gt=0, description="vllm on CPU: KV GiB")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs, or NeuronCores for neuron")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="passed as-is to engines that take extra arguments"
    )


class TextSettings(DeploymentSettings):
    """The text (LLM) group: /v1/chat/completions and the pipeline's answer."""

    engine: TextEngineConfig = Field(
        default_factory=TextEngineConfig, description="the text engine and its arguments")
    default_max_tokens: int = Field(
        128, ge=1, description="max_tokens of a request that gives none")
    max_tokens_limit: int = Field(1024, ge=1, description="the most max_tokens a request may "
                                  "ask; more gets 400")
    max_prompt_chars: int = Field(
        32768, ge=1, description="characters of all messages together, checked at the ingress "
        "before tokenizing; engine.max_prompt_tokens is checked after")
    max_messages: int = Field(
        256, ge=1, description="messages per chat request, checked at the ingress; more get 400")
    max_prompts: int = Field(
        16, ge=1, description="prompts per /v1/completions request (one completion each), "
        "checked at the ingress; more get 400")
    max_stop_sequences: int = Field(
        4, ge=0, description="stop strings per chat request (OpenAI allows 4); more get 400")
    max_stop_chars: int = Field(
        256, ge=1, description="characters of each stop string; a longer one gets 400 (every "
        "decoding step of the request looks for each)")
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

    name: Literal["open_clip", "neuron"] = Field("open_clip", description="the engine")
    arch: str = Field("ViT-B-32", description="open_clip architecture")
    checkpoint: str | None = Field(
        None, description="open_clip `pretrained=`: a checkpoint file (open_clip's state_dict "
        "format, .safetensors or torch.save) or a pretrained tag where the hub is reachable; "
        "unset: the model store's ViT-B-32, a seeded random initialisation (no package ships "
        "CLIP weights)")
    served_model_name: str = Field(
        "clip-vit-b-32", description="the text tower's model name; `-image` is appended for the "
        "image tower")
    dtype: Literal["float32", "bfloat16", "auto"] = Field(
        "auto", description="auto: chosen at start, on a CPU bfloat16 with AVX512-BF16 or "
        "AMX, else float32; on CUDA bfloat16 where the GPU has it; neuron: bfloat16; a value "
        "forces it")
    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="cuda puts CLIP on the GPU Ray gives the replica")
    quantization: Literal["int8"] | None = Field(
        None, description="int8: dynamic int8 Linear layers (CPU); open_clip engine only")
    threads: int = Field(1, ge=1, description="torch threads per replica")
    torchscript: bool = Field(
        True, description="open_clip: run the image tower as a frozen TorchScript trace (same "
        "outputs), whose forward releases the GIL, so request handling in the replica never "
        "stalls it; false runs eager. The trace is cached beside a checkpoint file "
        "(NAME.torchscript/, keyed by the file, the engine settings and torch's version): a "
        "later replica loads it in ~0.2 s without importing open_clip. About 350 MB of disk "
        "per cached trace of ViT-B-32 in float32; a read-only model dir just goes without")
    neuron_batch_size: int = Field(8, ge=1, description="neuron: batch the tower is traced for")


class VisionSettings(DeploymentSettings):
    """The vision group (CLIP): /v1/embeddings and the pipeline's zero-shot labels."""

    engine: VisionEngineConfig = Field(
        default_factory=VisionEngineConfig, description="the vision engine and its arguments")
    batching: Batching = Field(default_factory=lambda: Batching(max_batch_size=16),
                               description="the dynamic batcher, live-tunable")
    max_inputs: int = Field(256, ge=1, description="inputs per embeddings request")
    max_text_chars: int = Field(2048, ge=1, description="characters per text input")
    max_image_pixels: int = Field(
        16_777_216, ge=1, description="width x height, read from the image header before "
        "decoding (4096 x 4096 by default); 413 past it")
    image_formats: list[Literal["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"]] = Field(
        default_factory=lambda: list(DEFAULT_IMAGE_FORMATS), min_length=1,
        description="the image formats Pillow may open (what OpenAI's API takes: a GIF's "
        "first frame is used); any other gets 415 naming its format, before a decoder sees "
        "it")
    max_labels: int = Field(64, ge=1, description="zero-shot labels per pipeline request")
    max_label_chars: int = Field(200, ge=1, description="characters per label")


class AudioEngineConfig(_Strict):
    """faster-whisper (CTranslate2) and its arguments."""

    name: Literal["faster_whisper"] = Field("faster_whisper", description="the engine")
    model: str = Field("whisper-base", description="model store name or a CTranslate2 folder")
    served_model_name: str = Field(
        "whisper-base", description="the model name clients ask for (whisper-1 is accepted too)")
    compute_type: str = Field(
        "auto", description="CTranslate2 compute type; auto: chosen at start, int8 on x86 "
        "with AVX2, else float32; float16 on CUDA; a value (int8, float32, int8_float16...) "
        "forces it")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="where Whisper runs")
    threads: int = Field(1, ge=1, description="CTranslate2 threads per replica")
    beam_size: int = Field(1, ge=1, description="beam search width; 1 is greedy")


class AudioSettings(DeploymentSettings):
    """The audio group (Whisper): /v1/audio/transcriptions and the pipeline's transcript."""

    engine: AudioEngineConfig = Field(
        default_factory=AudioEngineConfig, description="the audio engine and its arguments")
    batching: Batching = Field(default_factory=lambda: Batching(max_batch_size=8),
                               description="the dynamic batcher, live-tunable")
    max_duration_s: float = Field(600.0, gt=0, description="longer audio gets 413")
    audio_formats: list[Literal["wav", "flac", "mp3", "ogg", "mp4", "webm"]] = Field(
        default_factory=lambda: list(DEFAULT_AUDIO_FORMATS), min_length=1,
        description="the containers FFmpeg may open, told by their first bytes (what OpenAI's "
        "API takes: mp4 covers m4a, mp3 covers mpeg and mpga, ogg holds Vorbis, Opus or "
        "FLAC); any other gets 415 naming it, and only the named demuxer opens the file")
    max_windows_per_call: int | None = Field(
        None, ge=1, description="30 s windows of audio in one model call: a batch with more "
        "runs as several calls, one after another, so that none outlasts "
        "model_call_timeout_s; unset: half of model_call_timeout_s at 5 s a window (30 with "
        "the defaults; whisper-base on one CPU thread takes about 1.2 s a window). Set it for "
        "a slower model or machine. At least the windows of one max_duration_s audio")

    def windows_per_call(self) -> int:
        """max_windows_per_call, or its default from model_call_timeout_s."""
        if self.max_windows_per_call is not None:
            return self.max_windows_per_call
        return default_windows_per_call(self.model_call_timeout_s)

    @model_validator(mode="after")
    def _one_audio_fits_one_call(self) -> AudioSettings:
        needed = windows_for_seconds(self.max_duration_s)
        if self.windows_per_call() < needed:
            raise ValueError(
                f"a call of {self.windows_per_call()} windows cannot hold one audio of "
                f"max_duration_s ({self.max_duration_s:g} s: {needed} windows of 30 s): raise "
                f"max_windows_per_call (or model_call_timeout_s) or lower max_duration_s")
        return self


class FromEnv(_Strict):
    """A value read from an environment variable of the ingress's Ray node instead of the
    profile: `redis_url: {env: MMSERVE_REDIS_URL}` (a URL without credentials, checked as one
    written in the profile is)."""

    env: str = Field(min_length=1, description="the environment variable's name")


class SecretSource(_Strict):
    """A secret read when the ingress starts, from an environment variable or a file of its
    node, never written in a profile: exactly one of the two."""

    env: str | None = Field(None, min_length=1, description="an environment variable's name")
    file: str | None = Field(None, min_length=1, description="a file holding the secret "
                             "(its trailing newline is dropped)")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self


class ApiKeys(_Strict):
    """Where the ingress reads its plain API keys: never the keys themselves, so none sits in a
    profile.

    `env` names an environment variable of the ingress's Ray node holding comma-separated keys;
    `file` is a path on that node with one key per line. Keys from both are accepted, as the
    tenant `default` (docs/security.md). A source that is configured (the variable set, the file
    named) but holds no key stops the start. With no key from any source (tenants included) the
    API is anonymous, which only a loopback bind (or allow_anonymous) permits.
    """

    env: str | None = Field(
        "MMSERVE_API_KEYS", description="an environment variable holding comma-separated keys")
    file: str | None = Field(None, description="a file with one key per line")


class TenantsSettings(_Strict):
    """Tenants (serve_app/tenants.py): a YAML file on the ingress's node naming each tenant, the
    SHA-256 digests of its keys and its limits (docs/security.md). Each ingress replica reads it
    again when it changes, so a new or revoked key takes effect without a restart.

    The limits' token buckets live in the app's Redis when one is configured
    (`cache.redis_url`, with its user and password), shared by every ingress replica; otherwise
    in process, per ingress replica.
    """

    file: str | None = Field(
        None, description="the tenants file, an absolute path on the ingress's node; unset: "
        "the file the `file_env` variable names, if it is set")
    file_env: str | None = Field(
        "MMSERVE_TENANTS_FILE", description="an environment variable of the ingress's node "
        "naming the tenants file, read when `file` is unset (`make serve` passes its own)")
    reload_interval_s: float = Field(
        2.0, gt=0, le=5, description="at most how often a replica looks at the file's device, "
        "inode, size and mtime (on a request), so a change takes effect within it")
    key_prefix: str = Field("mmserve:limits", min_length=1,
                            description="bucket keys are PREFIX:TENANT:LIMIT")
    redis_timeout_s: float = Field(1.0, gt=0, description="connect and socket timeout; past "
                                   "it the replica's own buckets decide. It counts the time the "
                                   "replica's event loop takes to read the answer, which a "
                                   "flood of requests stretches: each replica's buckets let in "
                                   "the whole rate, so a timeout reached under load lets a "
                                   "tenant past its limit")
    redis_retry_s: float = Field(5.0, ge=0, description="after a Redis failure, the replica's "
                                 "own buckets decide for this long before Redis is tried again")


class UsageSettings(_Strict):
    """What each tenant used (serve_app/tenant_usage.py): Prometheus counters by tenant, and
    hourly and daily totals that GET /v1/usage reports to admin tenants (docs/operations.md).
    The totals live in the app's Redis when one is configured (`cache.redis_url`, with its
    user and password), added up there by every ingress replica; otherwise in each ingress
    replica's memory, each counting only what it served.
    """

    hours_kept: int = Field(168, ge=1, le=24 * 366, description="hourly totals are kept and "
                            "reported for this many hours, the current one included")
    days_kept: int = Field(90, ge=1, le=3660, description="daily totals (UTC days) are kept "
                           "and reported for this many days, today included")
    key_prefix: str = Field("mmserve:usage", min_length=1, description="Redis keys are "
                            "PREFIX:hour:TENANT:START and PREFIX:day:TENANT:START (START in "
                            "epoch seconds), and the set PREFIX:tenants")
    flush_interval_s: float = Field(
        1.0, gt=0, le=60, description="with Redis: a replica writes its requests' counts there "
        "at most this long after they end (one transaction for all of them); GET /v1/usage "
        "writes its own replica's first")
    redis_timeout_s: float = Field(1.0, gt=0, description="connect and socket timeout of the "
                                   "usage's Redis calls (never on a request's path but "
                                   "GET /v1/usage's)")


class IngressSettings(_Strict):
    """The HTTP front end: its caps, deadlines, keys and its own replica group."""

    max_body_bytes: int = Field(25 * 1024 * 1024, ge=1024,
                                description="larger request bodies get 413")
    max_media_parts: int = Field(4, ge=0, description="image_url and input_audio parts per chat "
                                 "request, each perceived by the pipeline's stages; more get 400")
    max_json_depth: int = Field(
        32, ge=2, le=256, description="nesting of arrays and objects in a body; deeper gets 400 "
        "(json.loads itself stops near 1000 levels, at Python's recursion limit)")
    request_timeout_s: float = Field(
        120.0, gt=0, description="each request's deadline, carried through every stage into the "
        "replicas; a client may shorten it with the X-Request-Timeout header (seconds); 504 "
        "past it")
    stream_idle_timeout_s: float = Field(
        30.0, gt=0, description="a stream with no token for this long ends with an error event")
    max_concurrent_requests: int = Field(
        128, ge=1, description="requests one ingress replica works on at once; past it, 429")
    interactive_reserve: float = Field(
        0.25, ge=0, lt=1, description="the part of max_concurrent_requests kept for "
        "interactive tenants: a batch tenant's request gets 429 once (1 - this) x "
        "max_concurrent_requests are in flight, so batch is turned away first "
        "(docs/scheduling.md)")
    retry_idempotent: bool = Field(
        True, description="retry embeddings, transcriptions and pipeline perception once, "
        "within the deadline, when their replica died, if the call is cheap (below); and any "
        "call but a stream when its replica's whole node died")
    retry_max_images: int = Field(
        4, ge=0, description="an image call (image embeddings, the pipeline's labels) whose "
        "replica died is retried only with at most this many images: a larger one may be "
        "what killed it (text embeddings are always cheap)")
    retry_max_audio_bytes: int = Field(
        1024 * 1024, ge=0, description="a transcription whose replica died is retried only "
        "when its file is at most this many bytes (1 MiB: about 30 s of 16 kHz WAV, a few "
        "minutes of MP3); the ingress does not decode audio, so bytes stand for its length")
    api_keys: ApiKeys = Field(
        default_factory=ApiKeys, description="where the API keys are read (docs/security.md)")
    tenants: TenantsSettings = Field(
        default_factory=TenantsSettings, description="the tenants file and where their limits "
        "are kept (docs/security.md)")
    usage: UsageSettings = Field(
        default_factory=UsageSettings, description="what each tenant used, and where its "
        "hourly and daily totals are kept (docs/operations.md)")
    allow_anonymous: bool = Field(
        False, description="serve without API keys on a non-loopback HTTP bind (say it out loud)")
    max_ongoing_requests: int = Field(
        256, ge=1, description="Serve's cap per ingress replica; keep it above "
        "max_concurrent_requests so that the excess gets the ingress's 429, not a queue")
    max_queued_requests: int = Field(
        128, ge=-1, description="requests Serve's proxy holds for the ingress; past it, 503")
    num_cpus: float = Field(0.0, ge=0, description="CPUs one ingress replica reserves")
    resources: dict[str, float] = Field(
        default_factory=dict, description="custom resources one ingress replica asks for, so "
        "that it runs only on nodes advertising them: the cloud profiles ask {ingress_node: "
        "0.001}, the nodes that alone hold the API keys file")
    num_replicas: int = Field(1, ge=1, description="ingress replicas, when autoscaling is unset")
    autoscaling: Autoscaling | None = Field(
        None, description="the ingress's own autoscaling_config; unset: num_replicas")


class CacheSettings(_Strict):
    """The response cache at the ingress (serve_app/cache.py): exact-match answers, keyed by
    the tenant's namespace, model, model version, every argument the replica gets, and the
    sha256 of the input bytes.

    Off by default: a cache changes what a benchmark or a load test with repeated inputs
    measures. In process (one LRU per ingress replica, bounded by bytes) unless `redis_url` is
    set; then one Redis shared by every ingress replica, bounded by Redis's own `maxmemory`.
    Each tenant has its own namespace unless its entry in the tenants file says
    `cache_namespace: shared`; every entry is signed (`hmac_secret`) and checked on read.
    """

    enabled: bool = Field(False, description="the cache as a whole")
    embeddings: bool = Field(True, description="cache each input of /v1/embeddings")
    transcriptions: bool = Field(True, description="cache /v1/audio/transcriptions")
    translations: bool = Field(True, description="cache /v1/audio/translations")
    chat: bool = Field(False, description="cache /v1/chat/completions at temperature 0, "
                       "not streamed (opt-in: a deterministic answer is the engine's promise)")
    completions: bool = Field(False, description="cache /v1/completions at temperature 0, "
                              "not streamed (opt-in, as chat)")
    ttl_s: float = Field(3600.0, gt=0, description="an entry's lifetime")
    max_bytes: int = Field(256 * 1024 * 1024, ge=0, description="in process: keys and values "
                           "held per ingress replica; least recently used go first")
    max_item_bytes: int = Field(4 * 1024 * 1024, ge=0, description="larger answers are not "
                                "stored (both backends)")
    version: str = Field("", description="salt of every key: change it when the weights behind "
                         "an unchanged engine config change")
    redis_url: str | FromEnv | None = Field(
        None, description="redis://HOST:PORT/DB (or rediss://, unix://), or {env: NAME}; "
        "never with a user or password in it (refused); unset: one LRU in process per ingress "
        "replica")
    redis_username: str | None = Field(
        None, min_length=1, description="the Redis ACL user; unset: Redis's default user")
    redis_password: SecretSource | None = Field(
        None, description="Redis's AUTH password, from {env: NAME} or {file: PATH}; required "
        "for a Redis beyond loopback (the ingress refuses to start without it)")
    hmac_secret: SecretSource | None = Field(
        None, description="the secret every entry is signed with and checked against on read "
        "(HMAC-SHA256 of key and value), from {env: NAME} or {file: PATH}, at least 32 "
        "characters; required with redis_url (the ingress refuses to start without it); unset "
        "in process: a random one per ingress replica")
    key_prefix: str = Field("mmserve:cache", min_length=1,
                            description="keys are PREFIX:NAMESPACE:MODEL:SHA256; the namespace "
                            "is the tenant's (docs/security.md)")
    redis_timeout_s: float = Field(0.25, gt=0, description="connect and socket timeout; past "
                                   "it the request computes its answer")
    redis_retry_s: float = Field(5.0, ge=0, description="after a Redis failure, requests skip "
                                 "Redis for this long before trying it again")

    @field_validator("redis_url")
    @classmethod
    def _no_credentials_in_the_url(cls, value: str | FromEnv | None) -> str | FromEnv | None:
        if isinstance(value, str):
            check_redis_url(value)
        return value


class Tracing(_Strict):
    """OpenTelemetry spans of each request's stages (serve_app/tracing.py), made at the ingress
    from the same timings as Server-Timing. Off by default."""

    enabled: bool = Field(
        False, description="OpenTelemetry spans per request, replica call and stage")
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces (needs "
        "opentelemetry-exporter-otlp-proto-http); none: spans are made and dropped")
    service_name: str = Field("mmserve", min_length=1, description="the spans' service.name")


class RouteObjective(_Strict):
    """What one route promises: the time to its first token (streams, and the prefill of every
    text answer) and to its whole answer, from the request's arrival at the ingress."""

    ttft_s: float | None = Field(None, gt=0, description="time to the first token; unset: none")
    e2e_s: float | None = Field(None, gt=0, description="time to the whole answer; unset: none")

    def first_due_s(self) -> float | None:
        """Seconds after arrival by which the first thing the route owes is due: the first
        token where the route has a TTFT objective, else the whole answer."""
        return self.ttft_s if self.ttft_s is not None else self.e2e_s


class Slo(_Strict):
    """Each route's latency objective. Every request carries its objective (arrival plus the
    route's first due time) through every stage; `ray_mmserve_slo_requests_total{met}` counts
    answers against it, so goodput is the rate of met="true". With `scheduling: slo` the
    replica queues serve the earliest objective first and turn away at admission what is
    predicted to miss it (429 with a Retry-After); `fifo` keeps arrival order."""

    scheduling: Literal["fifo", "slo"] = Field(
        "fifo", description="fifo: queues in arrival order; slo: earliest objective first, "
        "with admission by predicted finish (docs/scheduling.md)")
    chat: RouteObjective = Field(
        default_factory=lambda: RouteObjective(ttft_s=2.0, e2e_s=30.0),
        description="/v1/chat/completions and /v1/completions")
    pipeline: RouteObjective = Field(
        default_factory=lambda: RouteObjective(ttft_s=5.0, e2e_s=30.0),
        description="/v1/pipeline: its first token waits for the audio and image stages")
    embeddings: RouteObjective = Field(
        default_factory=lambda: RouteObjective(e2e_s=2.0), description="/v1/embeddings")
    transcriptions: RouteObjective = Field(
        default_factory=lambda: RouteObjective(e2e_s=15.0),
        description="/v1/audio/transcriptions and /v1/audio/translations")

    def for_route(self, path: str) -> RouteObjective | None:
        """The objective of the route at `path`; None for routes without one."""
        name = ROUTE_OBJECTIVES.get(path)
        return getattr(self, name) if name else None


ROUTE_OBJECTIVES = {"/v1/chat/completions": "chat", "/v1/completions": "chat",
                    "/v1/pipeline": "pipeline", "/v1/embeddings": "embeddings",
                    "/v1/audio/transcriptions": "transcriptions",
                    "/v1/audio/translations": "transcriptions"}
# The route whose objective judges each model group in the capacity allocator: the route the
# group serves alone (the pipeline's requests reach every group and carry their own).
GROUP_ROUTES = {"text": "chat", "vision": "embeddings", "audio": "transcriptions"}


class Capacity(_Strict):
    """The capacity allocator (deployments/replicas/capacity_allocator.py) as the app's
    autoscaling policy: one decision for the text, vision and audio groups together, so the
    CPUs they share go to the group missing its objective (docs/profiles-and-clusters.md).

    Each group keeps its own `min_replicas`..`max_replicas` (a group without `autoscaling`
    keeps `num_replicas`: min = max) and is judged by the objective its own route's requests
    carry (`slo`): text by chat's `ttft_s`, vision by embeddings' `e2e_s`, audio by
    transcriptions' `e2e_s` (a route's first due time: `ttft_s` if set, else `e2e_s`). While
    the policy runs, the delays here replace the groups' own. It is set on the application in
    the Serve config (cluster/deploy.py writes it), which `serve run CONFIG.yaml` and `serve
    deploy` read; `serve run serve_app.app:build_app` and Python's `serve.run` cannot set it:
    there each group scales on its own queue (the queue policy, its own delays) instead.
    Like any builder arg, changing this section restarts every replica."""

    enabled: bool = Field(
        False, description="the allocator decides every group's replicas (off: each group "
        "scales on its own `autoscaling`)")
    pool_cpus: float | None = Field(
        None, gt=0, description="the CPUs the groups' replicas may reserve together; unset: "
        "the Ray cluster's CPUs less the ingress's reservation (read by Serve's controller, "
        "again every 30 s); set it on a cluster that adds nodes on demand, or that runs more "
        "than this app")
    busy_fraction: float = Field(
        0.5, gt=0, le=1, description="the part of its objective a request may spend waiting: "
        "a group whose predicted wait is past it is busy and gains a replica")
    slack_fraction: float = Field(
        0.2, ge=0, lt=1, description="a group that would still wait under this part of its "
        "objective with one replica fewer can spare one")
    upscale_delay_s: float = Field(
        0.5, ge=0, description="how long a group stays busy before it gains a replica")
    reclaim_delay_s: float = Field(
        5.0, ge=0, description="how long a group has had a replica to spare before a busy "
        "group may take it")
    downscale_delay_s: float = Field(
        30.0, ge=0, description="how long a group has had a replica to spare before it gives "
        "it back unasked")
    metrics_interval_s: float = Field(
        0.5, gt=0, description="how often replicas and handles report their load, for a group "
        "whose `autoscaling` leaves it unset (Serve's own default, 10 s, is too slow to see a "
        "burst within a 2 s objective)")
    look_back_period_s: float = Field(
        1.5, gt=0, description="the window that load is averaged over, for a group whose "
        "`autoscaling` leaves it unset")

    @model_validator(mode="after")
    def _ordered(self) -> Capacity:
        if self.slack_fraction >= self.busy_fraction:
            raise ValueError(f"slack_fraction ({self.slack_fraction}) must be below "
                             f"busy_fraction ({self.busy_fraction}): a group could be busy "
                             f"and spare a replica at once")
        if self.reclaim_delay_s > self.downscale_delay_s:
            raise ValueError(f"reclaim_delay_s ({self.reclaim_delay_s}) must not exceed "
                             f"downscale_delay_s ({self.downscale_delay_s}): a busy group "
                             f"would wait longer than an idle one gives back")
        if self.look_back_period_s <= self.metrics_interval_s:
            raise ValueError(f"look_back_period_s ({self.look_back_period_s}) must exceed "
                             f"metrics_interval_s ({self.metrics_interval_s})")
        return self


class Observability(_Strict):
    """What each request tells about itself and what the app counts (docs/operations.md)."""

    server_timing: bool = Field(
        True, description="a Server-Timing header on every response (and the stream's final "
        "event) to a tenant allowed the diagnostics (docs/security.md): each stage's time, "
        "from the ingress and from the replicas")
    metrics: bool = Field(True, description="the app's own ray_mmserve_* metrics (Ray Serve's "
                          "ray_serve_* stay)")
    tracing: Tracing = Field(default_factory=Tracing, description="OpenTelemetry spans")
    log_flush_interval_s: float = Field(
        0.5, ge=0, le=60, description="how often the ingress writes Serve's buffered log "
        "records (its access lines among them) to its replica's log file; Serve's "
        "throughput-optimized mode otherwise holds them until 1,000 have gathered. 0: as "
        "Serve buffers")


class AppConfig(_Strict):
    """The args of serve_app.app:build_app: the whole application."""

    model_dir: str | None = Field(
        None, description="the model store; unset: $MMSERVE_MODEL_DIR, else "
        "~/.cache/mmserve/models")
    ingress: IngressSettings = Field(
        default_factory=IngressSettings, description="the HTTP front end")
    cache: CacheSettings = Field(
        default_factory=CacheSettings, description="the response cache at the ingress")
    observability: Observability = Field(
        default_factory=Observability, description="Server-Timing, metrics, tracing")
    slo: Slo = Field(default_factory=Slo, description="each route's latency objective and how "
                     "the queues use it")
    capacity: Capacity = Field(
        default_factory=Capacity, description="the capacity allocator: replicas for every "
        "group at once, by their objectives")
    text: TextSettings = Field(default_factory=TextSettings, description="the text group")
    vision: VisionSettings = Field(default_factory=VisionSettings, description="the vision group")
    audio: AudioSettings = Field(default_factory=AudioSettings, description="the audio group")

    @model_validator(mode="after")
    def _capacity_has_what_it_needs(self) -> AppConfig:
        if not self.capacity.enabled:
            return self
        for group, route in GROUP_ROUTES.items():
            if getattr(self.slo, route).first_due_s() is None:
                raise ValueError(f"capacity.enabled needs an objective for slo.{route} "
                                 f"(ttft_s or e2e_s): it judges the {group} group")
        ingress = self.ingress.autoscaling
        if ingress is not None and ingress.policy == "queue":
            raise ValueError("capacity.enabled replaces every deployment's policy, the "
                             "ingress's too (it gets Serve's default): set "
                             "ingress.autoscaling.policy to ray")
        return self

    def group_objective_s(self, group: str) -> float:
        """The seconds the capacity allocator judges `group` by (GROUP_ROUTES)."""
        due = getattr(self.slo, GROUP_ROUTES[group]).first_due_s()
        if due is None:
            raise ValueError(f"slo.{GROUP_ROUTES[group]} has no objective")
        return due


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
