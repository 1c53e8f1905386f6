"""GRPO with HFRRF under PTST (docs/recipe.md §4): the CI model -> Vision-R1, on TRL's GRPOTrainer.

The paper's settings are explicit here because TRL's defaults differ (docs/platform.md): loss "grpo",
KL beta 0.01 (k3, against a frozen reference), clip epsilon 0.2, advantages (r - mean) / std within
each group of `num_generations` completions. The reward is a named set from visionr1.rewards
(`hfrrf`: 1 only for the right format AND the right answer; `zero`: format + result 1:1).

PTST is one schedule: a list of stages, each `{steps, max_completion_length, num_generations}` and
optionally `learning_rate` and `batch_size` (completions per device per micro-step; default one
group). Per-device batch x processes x grad_accum completions are generated per optimizer step and
must hold whole groups (a multiple of num_generations): a batch smaller than a group works with
gradient accumulation. Stage k starts from stage k-1's final weights, which are also its KL
reference, and keeps its own checkpoints under `stage<k>/`. The stages walk through one shuffled
order of the prompts (`prompt_sampler`): stage k starts where stage k-1 stopped, so stages see
disjoint prompts until the data runs out (TRL's own sampler would start every stage's trainer at
the same permutation). A run killed mid-stage resumes from that stage's newest checkpoint:
the weights are loaded from it (transformers' resume alone does not restore Qwen2.5-VL weights,
docs/platform.md) and the optimizer, scheduler and step come from `resume_from_checkpoint`.

Rollouts: HF generate (CPU, one GPU) or vLLM (`rollout` "vllm_server"; "vllm_colocate" is refused,
compat.COLOCATE_REFUSED). With vllm_server each stage runs in processes of its own beside a
`trl vllm-serve` that `launch` starts on that stage's start model, on `vllm_gpus` GPUs the trainer
does not use, and stops with the stage (visionr1.vllm_server). TRL's importance-sampling correction
of vLLM's log-probs is off unless `vllm_is_correction` names a mode (the paper trained without it;
TRL 1.15 turns it on by default); each stage records what the trainer used. Completions are decoded
without special tokens and any image placeholder left in them is removed before grading. A truncated completion is masked out of the loss
(`truncated: "mask"`), rewarded 0 (`"zero"`) or kept (`"keep"`). The mask applies to the loss only: TRL's
`mask_truncated_completions` also zeroes the attention mask, and Qwen2.5-VL's 3-D position ids
then fail on the shape mismatch (TRL 1.15, transformers 5.17).

Every logged step goes to `metrics.jsonl` (and W&B): the reward and its parts, completion lengths,
clipped ratio, share of groups with zero reward spread, KL, entropy, the stage, the step time
split into generation, reward and training, and the grading counters (`grading/timeouts`,
`refused`, `ungradeable_gold`, `errors`, `wall_timeouts`, `graded`, `mean_ms`: a step where math-verify ran
out of its work budget
is not mistaken for a step with low reward). Every `sample_every` steps the completions of the step
are appended to `samples.jsonl` with their rewards. Entry point for `accelerate launch`:
`python -m visionr1.grpo PARAMS_JSON`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from visionr1 import checkpoints, compat, dist, generation, grading, models, params, rewards, sft, tiny_model, training

STAGE_EXAMPLE = {"steps": 100, "max_completion_length": 4096, "num_generations": 16}
STAGE_KEYS = {"steps", "max_completion_length", "num_generations", "learning_rate", "batch_size"}
ROLLOUTS = ("hf", "vllm_colocate", "vllm_server")
PER_RANK_SHA_MAX_PARAMS = 10**9  # larger models: weights hashed once, on the main process, from the saved files
SHA_CACHE = "weights_sha.json"  # in 03's folder: saved weights already hashed (checkpoints.saved_weights_sha)
VLLM_GROUP_PORT = 51216  # TRL's vllm_group_port default: the trainer binds it for the weight sync with vLLM
IS_CORRECTIONS = ("none", "sequence_mask", "sequence_truncate", "token_mask", "token_truncate")  # TRL 1.15's modes
PLACEHOLDERS = ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<image>")


# 03's own cells use these keys (the start model and the data are resolved into the fields below)
NOTEBOOK_ONLY = ("rl_start", "rl_source_run", "rl_data", "rl_zero_stages", "rl_long_stages", "rl_num_gpus",
                 "rl_deepspeed", "rl_system_prompt", "rl_eval_samples", "rl_eval_max_new_tokens", "rl_sft_control")


@dataclass(kw_only=True)
class GRPOParams(params.declared("03_grpo_ptst", "rl_", NOTEBOOK_ONLY)):
    """One RL run's settings. Every `rl_<name>` knob of notebooks/03_grpo_ptst.ipynb's parameters
    cell (except NOTEBOOK_ONLY) is the field `<name>`, with that line's type, default and comment
    (`python -m visionr1 params` lists them): a new knob is one line there. The fields below are
    resolved from the params by `params_from_values`, or are not knobs."""

    model: str                      # the start model's path: CI (Vision-R1, -Long) or base (-Zero)
    data: str                       # Vision-R1-rl style parquet: a folder or a file with images, problem, answer
    output_dir: str
    system_prompt: str | None = None  # the text (rl_system_prompt "r1-zero" resolved); None: the model's default
    deepspeed: str | None = None    # path of a DeepSpeed config (rl_deepspeed, several processes only)
    save_total_limit: int = 2
    logging_steps: int = 1
    seed: int = 0
    report_to: str = "none"
    run_name: str = "grpo"
    ddp_timeout: int = dist.DEFAULT_TIMEOUT_S  # seconds a rank may wait at a barrier (the process group's timeout)

    @classmethod
    def from_json(cls, path: str | Path) -> "GRPOParams":
        return cls(**json.loads(Path(path).read_text()))

    def __post_init__(self):
        check_stages(self.stages, self.batch_size, self.grad_accum, num_processes=None)  # processes: at launch
        for name, allowed in (("rollout", ROLLOUTS), ("truncated", ("mask", "zero", "keep")),
                              ("vllm_is_correction", IS_CORRECTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        rewards.reward_set(self.reward, self.format_strictness)  # fails now on a bad name
        if self.rollout == "vllm_colocate":
            raise ValueError(compat.COLOCATE_REFUSED)
        if self.vllm_gpus < 1 or self.vllm_data_parallel < 1 or self.vllm_gpus % self.vllm_data_parallel:
            raise ValueError(f"vllm_gpus ({self.vllm_gpus}) must be >= 1 and a multiple of vllm_data_parallel "
                             f"({self.vllm_data_parallel}): each replica takes vllm_gpus / vllm_data_parallel GPUs")


def check_stages(stages: list[dict], batch_size: int | None = None, grad_accum: int = 1,
                 num_processes: int | None = 1) -> None:
    """Each stage names steps, max_completion_length and num_generations (>= 2), and nothing unknown;
    and (unless `num_processes` is None: not known yet) its completions per optimizer step, per-device
    batch (the stage's `batch_size`, else `batch_size`, else one group) x processes x `grad_accum`,
    hold whole groups: TRL generates them in one batch and compares each completion with the others
    of its group."""
    if not stages:
        raise ValueError("the PTST schedule is empty: give at least one stage")
    for i, st in enumerate(stages, 1):
        if not isinstance(st, dict):
            raise ValueError(f"stage {i}: expected a mapping like {STAGE_EXAMPLE}, got {st!r}")
        missing = {"steps", "max_completion_length", "num_generations"} - set(st)
        unknown = set(st) - STAGE_KEYS
        if missing or unknown:
            raise ValueError(f"stage {i} {st}: " + "; ".join(
                ([f"missing {', '.join(sorted(missing))}"] if missing else []) +
                ([f"unknown {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(STAGE_KEYS))})"] if unknown else [])))
        if int(st["num_generations"]) < 2:
            raise ValueError(f"stage {i}: num_generations must be >= 2 (GRPO compares completions within a group)")
        g, bs = int(st["num_generations"]), int(st.get("batch_size") or batch_size or st["num_generations"])
        if num_processes is not None and (bs * num_processes * grad_accum) % g:
            raise ValueError(
                f"stage {i}: per-device batch {bs} x {num_processes} process(es) x grad_accum {grad_accum} = "
                f"{bs * num_processes * grad_accum} completions per step is not a multiple of num_generations {g} "
                f"(GRPO needs whole groups); change the stage's batch_size, rl_batch_size, rl_grad_accum or "
                f"rl_num_gpus")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def load_rows(data: str | Path, max_samples: int | None = None, system_prompt: str | None = None) -> list[dict]:
    """TRL GRPO rows {id, images: [PIL], prompt: [messages], answer, choices} from Vision-R1-rl style
    parquet (read with visionr1.released_data: bad rows are reported by file:row)."""
    from visionr1 import released_data

    data = Path(data)
    if data.is_file():
        recs = released_data.load_geometry3k(data.parent, split=data.stem)
    else:
        recs = released_data.load_geometry3k(data, split="train")
    rows = []
    for r in recs[:max_samples] if max_samples else recs:
        problem = r["problem"] if released_data.IMAGE_TAG in r["problem"] else released_data.IMAGE_TAG + r["problem"]
        msgs = training.to_multimodal([{"role": "user", "content": problem}], len(r["images"]), r["source"])
        if system_prompt:
            msgs.insert(0, {"role": "system", "content": [{"type": "text", "text": system_prompt}]})
        rows.append({"id": r["id"], "images": r["images"], "prompt": msgs, "answer": str(r["answer"]),
                     "choices": grading.choices_in(r["problem"])})
    if not rows:
        raise ValueError(f"no RL rows in {data}")
    return rows


def to_dataset(rows: list[dict]):
    import datasets

    feats = datasets.Features({
        "id": datasets.Value("string"), "images": datasets.Sequence(datasets.Image()),
        "prompt": [{"role": datasets.Value("string"),
                    "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}]}],
        "answer": datasets.Value("string"), "choices": datasets.Sequence(datasets.Value("string"))})
    return datasets.Dataset.from_list(rows, features=feats)


def prompt_order(n: int, seed: int, shuffle: bool = True):
    """The order in which every PTST stage draws prompts: position p of an endless stream is prompt
    `order(p)`; the stream is one permutation of the `n` prompts after another, drawn in turn from a
    generator seeded with `seed` (the first is the one TRL's RepeatSampler draws: a one-stage run
    sees what TRL would show it). `shuffle=False`: 0, 1, ..., n-1 over and over."""
    import torch

    gen, perms = torch.Generator(), []
    gen.manual_seed(seed)

    def order(p: int) -> int:
        epoch, i = divmod(p, n)
        if not shuffle:
            return i
        while len(perms) <= epoch:
            perms.append(torch.randperm(n, generator=gen).tolist())
        return perms[epoch][i]
    return order


def prompt_sampler(data_source, *, mini_repeat_count: int, batch_size: int, repeat_count: int, shuffle: bool,
                   seed: int, start: int = 0):
    """TRL's RepeatSampler (groups of `mini_repeat_count` copies, generation batches of `batch_size`
    prompts, each batch `repeat_count` times) reading `prompt_order` from position `start`: the
    prompts the earlier stages consumed are skipped. Pass e (`set_epoch`, which the trainer calls)
    reads the next (len(data) // batch_size) * batch_size positions, so a resumed stage reads again
    what it read before."""
    from trl.trainer.utils import RepeatSampler

    class StreamRepeatSampler(RepeatSampler):
        def __init__(self):
            super().__init__(data_source, mini_repeat_count=mini_repeat_count, batch_size=batch_size,
                             repeat_count=repeat_count, shuffle=shuffle, seed=seed)
            self.start, self.epoch, self.order = start, 0, prompt_order(self.num_samples, seed, shuffle)

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            per_pass = (self.num_samples // self.batch_size) * self.batch_size
            first = self.start + self.epoch * per_pass
            ids = [self.order(p) for p in range(first, first + per_pass)]
            self.epoch += 1  # a pass without set_epoch continues where this one stops
            for b in range(0, per_pass, self.batch_size):
                chunk = ids[b:b + self.batch_size]
                for _ in range(self.repeat_count):
                    for index in chunk:
                        for _ in range(self.mini_repeat_count):
                            yield index

    return StreamRepeatSampler()


def prompt_record(n: int, seed: int, shuffle: bool, start: int, count: int) -> dict:
    """What a stage reading `count` positions of `prompt_order` from `start` sees: `prompt_stream`
    [start, end), its `distinct_prompts`, and `new_prompts` (not read by any earlier stage)."""
    order = prompt_order(n, seed, shuffle)
    seen, mine = {order(q) for q in range(start)}, {order(q) for q in range(start, start + count)}
    return {"prompt_stream": [start, start + count], "distinct_prompts": len(mine), "new_prompts": len(mine - seen)}


def prompts_per_step(args) -> int:
    """Distinct prompts a GRPOConfig's trainer consumes per optimizer step: one generation batch
    (generation_batch_size / num_generations prompts) per steps_per_generation x num_iterations
    micro-steps, gradient_accumulation_steps micro-steps per step."""
    per_generation = args.generation_batch_size // args.num_generations
    return per_generation * args.gradient_accumulation_steps // (args.steps_per_generation * args.num_iterations)


# ---------------------------------------------------------------------------------------------
# Rewards as the trainer sees them
# ---------------------------------------------------------------------------------------------
def strip_placeholders(text: str) -> str:
    for tag in PLACEHOLDERS:
        text = text.replace(tag, "")
    return text


def trainer_rewards(p: GRPOParams, max_completion_length: int, eos_ids: set[int]) -> tuple[list, list[float]]:
    """The reward set's functions with image placeholders stripped from completions, and (with
    `truncated: "zero"`) 0 for a completion that hit the length limit without an end token."""
    funcs, weights = rewards.reward_set(p.reward, p.format_strictness)
    out = []
    for fn in funcs:
        def wrapped(completions, _fn=fn, completion_ids=None, **kw):
            texts = [strip_placeholders(rewards.completion_text(c)) for c in completions]
            scores = _fn(texts, completion_ids=completion_ids, **kw)
            if p.truncated == "zero" and completion_ids is not None:
                scores = [0.0 if len(ids) >= max_completion_length and not (set(ids[-1:]) & eos_ids) else s
                          for s, ids in zip(scores, completion_ids)]
            return scores
        wrapped.__name__ = wrapped.__qualname__ = fn.__name__
        out.append(wrapped)
    return out, weights


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------
def trainer_class():
    """TRL's GRPOTrainer, timing generation and reward per step and keeping sample completions."""
    import torch
    from trl import GRPOTrainer

    compat.torch_logprobs_fallback()
    compat.sdpa_gqa_without_grad()  # rollouts and the reference / old-policy passes
    compat.kv_cache_in_place_without_grad()  # rollouts

    class StagedGRPOTrainer(GRPOTrainer):
        stage: int = 1
        step_offset: int = 0
        prompt_offset: int = 0  # stream positions (prompt_order) the earlier stages consumed
        mask_truncated: bool = False
        samples_path: Path | None = None
        sample_every: int = 0

        def _get_train_sampler(self, dataset=None):
            return prompt_sampler(self.train_dataset if dataset is None else dataset,
                                  mini_repeat_count=self.num_generations,
                                  batch_size=self.args.generation_batch_size // self.num_generations,
                                  repeat_count=self.num_iterations * self.args.steps_per_generation,
                                  shuffle=self.shuffle_dataset, seed=self.args.seed, start=self.prompt_offset)

        def _generate(self, prompts):
            t0 = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                self._timing["generation"] += time.perf_counter() - t0

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            self._count_flops(out)
            if self.mask_truncated:  # loss mask only: TRL's own option also masks attention, which breaks
                ids, mask = out["completion_ids"], out["completion_mask"]  # Qwen2.5-VL's 3-D positions
                eos = torch.tensor(sorted(set(self.eos_token_ids)), device=ids.device)
                ended = (torch.isin(ids, eos) & mask.bool()).any(dim=1)
                keep = ended.int().unsqueeze(1).expand_as(mask)
                out["tool_mask"] = keep if "tool_mask" not in out else out["tool_mask"] * keep
            return out

        def _count_flops(self, out):
            """Training compute of this generation batch, from its token counts: 2 x params x tokens
            for the generation and for each extra forward pass (reference, old policy), 6 x params x
            tokens for each optimization pass (forward and backward), summed over processes."""
            if not self.model.training:
                return
            tokens = int(out["prompt_mask"].sum() + out["completion_mask"].sum()) * self.accelerator.num_processes
            passes = 2 + 6 * self.num_iterations + sum(
                2 for k in ("ref_per_token_logps", "old_per_token_logps") if out.get(k) is not None)
            self._timing["flops"] += passes * self.n_params * tokens
            self._timing["tokens"] += tokens

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            t0, before = time.perf_counter(), dict(grading.STATS)
            out = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._timing["reward"] += time.perf_counter() - t0
            # this batch's grading counters, summed over processes (every rank computes rewards)
            keys = ("graded",) + grading.COUNTERS + ("grading_s",)
            local = torch.tensor([grading.STATS[k] - before.get(k, 0) for k in keys], dtype=torch.float64,
                                 device=self.accelerator.device)
            for k, v in zip(keys, self.accelerator.gather(local).view(-1, len(keys)).sum(0).tolist()):
                self._timing["grading"][k] = self._timing["grading"].get(k, 0) + v
            step = self.state.global_step + 1 + self.step_offset
            if self.samples_path and self.sample_every and self.model.training and \
                    (step == 1 + self.step_offset or step % self.sample_every == 0):
                self._save_samples(step, inputs, completions, out)
            return out

        def _save_samples(self, step, inputs, completions, rewards_per_func):
            """`rewards_per_func` holds every rank's rows (TRL gathers them): this rank's rows are
            its slice by process index. The rows of all ranks are gathered and the main process
            alone appends them, so each completion keeps its own rewards and no line is torn."""
            names = [getattr(f, "__name__", str(f)) for f in self.reward_funcs]
            i = self.accelerator.process_index * len(inputs)
            mine = rewards_per_func[i:i + len(inputs)].tolist()
            rows = [{"step": step, "stage": self.stage, "rank": self.accelerator.process_index, "id": row.get("id"),
                     "question": _prompt_text(row["prompt"]), "answer": row.get("answer"),
                     "completion": rewards.completion_text(c),
                     "rewards": {n: (None if v != v else v) for n, v in zip(names, r)}}
                    for row, c, r in zip(inputs, completions, mine)]
            rows = dist.gather(rows)
            if self.accelerator.is_main_process:
                with self.samples_path.open("a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in rows)

        def training_step(self, model, inputs, num_items_in_batch):
            t0 = time.perf_counter()
            try:
                return super().training_step(model, inputs, num_items_in_batch)
            finally:
                self._timing["step"] += time.perf_counter() - t0
                self._timing["n"] += 1

        def log(self, logs, start_time=None):
            if self.model.training and self._timing["n"]:
                n = self._timing["n"] / self.args.gradient_accumulation_steps
                gen, rew, step = (self._timing[k] / n for k in ("generation", "reward", "step"))
                logs.update({"time/generation_s": gen, "time/reward_s": rew,
                             "time/training_s": max(0.0, step - gen - rew), "time/step_s": step,
                             "compute/flops": self._timing["flops"], "compute/tokens": self._timing["tokens"],
                             "stage": self.stage, "stage_step": self.state.global_step,
                             **rewards.grading_metrics({}, self._timing["grading"])})
                self._timing = _new_timing()
            super().log(logs, start_time)

    StagedGRPOTrainer._timing = _new_timing()
    return StagedGRPOTrainer


def _new_timing() -> dict:
    return {"generation": 0.0, "reward": 0.0, "step": 0.0, "n": 0, "flops": 0, "tokens": 0, "grading": {}}


def _prompt_text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return " ".join(part.get("text") or "" for m in prompt for part in (m["content"] if isinstance(m["content"], list)
                                                                        else [{"text": m["content"]}]))


def placeholder_token_ids(tokenizer) -> list[int]:
    """Ids of the vision placeholder tokens the tokenizer knows."""
    unk = tokenizer.unk_token_id
    ids = [tokenizer.convert_tokens_to_ids(t) for t in PLACEHOLDERS if t != "<image>"]
    return sorted({i for i in ids if i is not None and i != unk})


def generation_kwargs(p: GRPOParams, placeholder_ids: list[int]) -> dict:
    """Rollouts never emit a vision placeholder: in a completion, Qwen2.5-VL would take it for an
    image without pixels (its 3-D position ids then fail on the shape). HF generate suppresses the
    ids; vLLM bans the strings."""
    if p.rollout == "hf":
        return {"suppress_tokens": placeholder_ids} if placeholder_ids else {}
    return {"bad_words": [t for t in PLACEHOLDERS if t != "<image>"]}


def grpo_config(p: GRPOParams, stage: dict, out: Path, placeholder_ids: list[int] = (),
                num_processes: int | None = None):
    """TRL's GRPOConfig for one stage, on `num_processes` processes (default: this launch's world)."""
    from trl import GRPOConfig

    import torch

    n = num_processes or dist.world_size()
    check_stages([stage], p.batch_size, p.grad_accum, n)  # our message, before TRL's
    g = int(stage["num_generations"])
    batch = int(stage.get("batch_size") or p.batch_size or g)
    vllm = p.rollout != "hf"
    is_mode = p.vllm_is_correction if p.vllm_is_correction != "none" else "sequence_mask"  # unused when off
    return GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=batch, gradient_accumulation_steps=p.grad_accum,
        learning_rate=float(stage.get("learning_rate") or p.learning_rate), lr_scheduler_type=p.lr_scheduler,
        warmup_steps=p.warmup_ratio, max_steps=int(stage["steps"]), num_generations=g,
        max_completion_length=int(stage["max_completion_length"]), temperature=p.temperature, top_p=p.top_p,
        beta=p.beta, epsilon=p.epsilon, loss_type=p.loss_type, scale_rewards=p.scale_rewards,
        mask_truncated_completions=False, bf16=p.bf16, gradient_checkpointing=p.gradient_checkpointing,
        # TRL loads the KL reference model with these: the same dtype and attention as the policy
        model_init_kwargs={"dtype": torch.bfloat16 if p.bf16 else torch.float32,
                           **({"attn_implementation": impl} if (impl := tiny_model.attn_implementation(
                               torch.bfloat16 if p.bf16 else torch.float32)) else {})},
        use_vllm=vllm, vllm_mode="colocate" if p.rollout == "vllm_colocate" else "server",
        vllm_gpu_memory_utilization=p.vllm_gpu_memory_utilization, vllm_server_host=p.vllm_server_host,
        vllm_max_model_length=context_length(p) if vllm else None,
        vllm_server_port=p.vllm_server_port, vllm_group_port=VLLM_GROUP_PORT,
        # explicit: TRL 1.15 turns the correction on by default (sequence_mask, cap 3)
        vllm_importance_sampling_correction=p.vllm_is_correction != "none", vllm_importance_sampling_mode=is_mode,
        vllm_importance_sampling_clip_max=p.vllm_is_cap, ddp_timeout=p.ddp_timeout,
        logging_steps=p.logging_steps, save_steps=p.save_steps,
        save_total_limit=p.save_total_limit, seed=p.seed, report_to=p.report_to, run_name=p.run_name,
        remove_unused_columns=False, dataloader_num_workers=0, deepspeed=p.deepspeed, disable_tqdm=False,
        log_completions=False, reward_weights=None, generation_kwargs=generation_kwargs(p, placeholder_ids),
    )


def end_token_ids(model_path: str, processor) -> set[int]:
    """Token ids that end a completion: the tokenizer's eos and the model's generation eos ids."""
    from transformers import GenerationConfig

    ids = {processor.tokenizer.eos_token_id}
    try:
        gen = GenerationConfig.from_pretrained(model_path).eos_token_id
        ids |= set(gen if isinstance(gen, list) else [gen])
    except OSError:
        pass
    return {i for i in ids if i is not None}


def stage_dirs(output_dir: str | Path, n: int) -> list[Path]:
    return [Path(output_dir) / f"stage{k}" for k in range(1, n + 1)]


def guard(p: GRPOParams) -> None:
    """Refuse to continue a run folder trained with other params; record these (main process)."""
    out = Path(p.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = {k: v for k, v in asdict(p).items() if k not in ("save_steps", "save_total_limit", "logging_steps",
                                                                    "report_to", "deepspeed", "sample_every",
                                                                    "vllm_server_host", "vllm_server_port",
                                                                    "vllm_gpus", "vllm_data_parallel",
                                                                    "vllm_server_timeout", "ddp_timeout")}
    any_ck = next((c for d in stage_dirs(out, len(p.stages)) for c in [checkpoints.newest_checkpoint(d)] if c), None)
    done_any = any((d / "final" / "stage.json").exists() for d in stage_dirs(out, len(p.stages)))
    if dist.is_main():
        checkpoints.guard_params(out, fingerprint, any_ck or (out / "stage1" if done_any else None))
    dist.wait()


def train(p: GRPOParams, log=print, only_stage: int | None = None) -> dict:
    """Run every PTST stage not finished yet (or only stage `only_stage`, the multi-process path:
    one launched process group per stage); then the last stage's weights go to `output_dir/final`
    (with the processor). Returns a summary with per-stage records (start weights, resume point,
    seconds, the trainer's actual length and generations, the prompts it read).

    With `rollout: vllm_server` in one process (the notebook kernel) this is `launch` on one
    process: every stage runs in a process of its own beside its own vLLM server."""
    out = Path(p.output_dir)
    dist.init(p.ddp_timeout)  # before the first barrier (guard), with the trainer's ddp_timeout
    if p.rollout == "vllm_server" and only_stage is None:
        if dist.world_size() > 1:
            raise RuntimeError("rollout vllm_server runs each PTST stage in processes of its own: start it with "
                               "grpo.launch (`python -m visionr1.grpo PARAMS_JSON --stage K` per stage)")
        out.mkdir(parents=True, exist_ok=True)
        (out / "grpo_params.json").write_text(json.dumps(asdict(p), indent=2))
        return launch(out / "grpo_params.json", 1, log)
    guard(p)
    processor = tiny_model.load_processor(p.model, min_pixels=p.min_pixels, max_pixels=p.max_pixels)
    # TRL left-pads prompt ids and takes mm_token_type_ids from the processor: both must pad left
    processor.tokenizer.padding_side = processor.tokenizer.truncation_side = "left"
    rows = load_rows(p.data, p.max_train_samples, p.system_prompt)
    dataset = to_dataset(rows)
    log(f"RL data: {len(rows)} prompts from {p.data}")
    eos_ids = end_token_ids(p.model, processor)
    start, offset, prompt_pos = p.model, 0, 0  # prompt_pos: where the next stage reads prompt_order
    for k, (stage, sdir) in enumerate(zip(p.stages, stage_dirs(out, len(p.stages))), 1):
        marker = sdir / "final" / "stage.json"
        rec = None
        if marker.exists():
            rec = json.loads(marker.read_text())
            log(f"stage {k}: done earlier ({rec['steps']} steps), skipping")
        elif only_stage is None or only_stage == k:
            rec = run_stage(p, k, stage, sdir, start, offset, dataset, processor, eos_ids, out, log, prompt_pos)
        elif k < only_stage:
            raise RuntimeError(f"stage {only_stage} needs stage {k} first: {marker} not found")
        start, offset = str(sdir / "final"), offset + int(stage["steps"])
        if rec is not None:  # (a record from before the prompt stream: its stage read from position 0)
            prompt_pos = rec.get("prompt_stream", [0, 0])[1]
    if only_stage is not None:
        return json.loads((stage_dirs(out, only_stage)[-1] / "final" / "stage.json").read_text())
    return finish(p)


def finish(p: GRPOParams) -> dict:
    """After the last stage: its weights copied to `output_dir/final`, and `summary.json` (main
    process; the others wait)."""
    out = Path(p.output_dir)
    records = [json.loads((d / "final" / "stage.json").read_text()) for d in stage_dirs(out, len(p.stages))]
    final = out / "final"
    summary = {"prompts": records[-1].get("prompts"), "stages": records, "steps": sum(int(s["steps"]) for s in p.stages),
               "final_model": str(final), "train_seconds": round(sum(r["seconds"] for r in records), 1),
               "num_processes": max(r.get("num_processes", 1) for r in records),
               **logged_compute(out / "metrics.jsonl")}
    if all("prompt_stream" in r for r in records):  # distinct prompts over the whole run
        summary["distinct_prompts"] = prompt_record(records[-1]["prompts"], p.seed, True, 0,
                                                    records[-1]["prompt_stream"][1])["distinct_prompts"]
    if dist.is_main():
        _copy_model(stage_dirs(out, len(p.stages))[-1] / "final", final)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    dist.wait()
    return summary


def launch(params_json: str | Path, num_processes: int, log=print, machines=None) -> dict:
    """Each PTST stage not done yet in its own launched process group (`python -m visionr1.grpo
    PARAMS_JSON --stage K` on `num_processes` processes), so every stage starts its engines (vLLM
    client, DeepSpeed) in fresh processes; then `finish` here. Returns the summary. `machines`
    (visionr1.machines.Machines) spanning several: each stage's launch spans them all,
    `num_processes` on each (machine 0 announces it; docs/multiprocess.md "Several machines").

    With `rollout: vllm_server`, each stage's `trl vllm-serve` runs on the stage's start model, on
    the `vllm_gpus` GPUs after the trainer's `num_processes` (vllm_server.split_gpus), from before
    the stage's processes start until they end or fail; its log is `stage<k>/vllm_server.log`.
    A `vllm_server_host` of another machine (vllm_server.is_local) is a server started there: none is
    started here, each stage waits until it answers (TRL sends it the stage's weights at the first
    step) and every local GPU trains."""
    from contextlib import nullcontext

    p = GRPOParams.from_json(params_json)
    total = num_processes * (machines.num if machines is not None else 1)
    check_stages(p.stages, p.batch_size, p.grad_accum, total)  # before any process or server starts
    train_gpus = serve_gpus = None
    if p.rollout == "vllm_server":
        from visionr1 import vllm_server

        local = vllm_server.is_local(p.vllm_server_host)
        if local:
            train_gpus, serve_gpus = vllm_server.split_gpus(num_processes, p.vllm_gpus)
    for k, sdir in enumerate(stage_dirs(p.output_dir, len(p.stages)), 1):
        if (sdir / "final" / "stage.json").exists():
            log(f"stage {k}: done earlier, skipping")
            continue
        server = nullcontext()
        if p.rollout == "vllm_server" and local:
            if not vllm_server.port_free("0.0.0.0", VLLM_GROUP_PORT):
                raise RuntimeError(f"port {VLLM_GROUP_PORT} (TRL's vllm_group_port: the trainer's weight-sync group) "
                                   f"is taken: another trainer still running?")
            start = stage_start(p, k)
            server = vllm_server.serving(server_command(p, start), host=p.vllm_server_host, port=p.vllm_server_port,
                                         log_path=sdir / "vllm_server.log", gpus=serve_gpus, model=start,
                                         timeout_s=p.vllm_server_timeout, log=log)
        elif p.rollout == "vllm_server":
            server = vllm_server.remote(p.vllm_server_host, p.vllm_server_port, timeout_s=p.vllm_server_timeout, log=log)
        with server:
            dist.launch("visionr1.grpo", [str(params_json), "--stage", str(k)], num_processes, log,
                        mixed_precision="bf16" if p.bf16 else "no",
                        env={"CUDA_VISIBLE_DEVICES": ",".join(train_gpus)} if train_gpus else None, machines=machines)
    return finish(p)  # the prompt count comes from the stage records: no second read of the RL set


def stage_start(p: GRPOParams, k: int) -> str:
    """The weights stage `k` starts from: the start model, then the previous stage's final."""
    return p.model if k == 1 else str(stage_dirs(p.output_dir, k - 1)[-1] / "final")


def run_stage(p: GRPOParams, k: int, stage: dict, sdir: Path, start: str, offset: int, dataset, processor,
              eos_ids: set[int], out: Path, log=print, prompt_start: int = 0) -> dict:
    """Train stage `k` from `start`, logging steps from `offset` + 1 and reading prompts from position
    `prompt_start` of `prompt_order`; returns its record (also written to `stage<k>/final/stage.json`)."""
    import torch

    sdir.mkdir(parents=True, exist_ok=True)
    resume = checkpoints.newest_checkpoint(sdir)
    log(f"stage {k}: {stage} from {start}" + (f", resuming {resume.name}" if resume else ""))
    dtype = torch.bfloat16 if p.bf16 else torch.float32
    # LoRA resumes from the stage's start weights plus the checkpoint's adapter (restored below)
    model = tiny_model.load_model(str(start if p.lora_r else resume or start), dtype=dtype)
    # what each rank loaded: all must hold the stage's start (or resume) weights (hashed before any
    # DeepSpeed engine shards them); every rank hashes only a small model (tests, nano): a 7B hash
    # costs each rank ~30 s of CPU, so there the main process alone hashes the saved files, each
    # folder once (SHA_CACHE: stage k + 1's start is stage k's final, hashed when it was written)
    per_rank = tiny_model.n_params(model) <= PER_RANK_SHA_MAX_PARAMS
    loaded_sha = dist.gather([checkpoints.weights_sha(model)]) if per_rank else None
    # hashed now: checkpoint rotation may delete `resume` later (None for a hub name: no local files)
    weights_from = start if p.lora_r else resume or start
    start_sha = checkpoints.saved_weights_sha(weights_from, out / SHA_CACHE) \
        if Path(weights_from).is_dir() and dist.is_main() else None
    # TRL builds the KL reference from config._name_or_path: the stage's start, also after a resume
    model.config._name_or_path = model.name_or_path = str(start)
    funcs, weights = trainer_rewards(p, int(stage["max_completion_length"]), eos_ids)
    cfg = grpo_config(p, stage, sdir, placeholder_token_ids(processor.tokenizer))
    cfg.reward_weights = weights
    peft_config = None
    if p.lora_r:  # TRL then takes the base with the adapter disabled as the KL reference: no second copy
        from peft import LoraConfig

        peft_config = LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                                 target_modules=training.LORA_TARGETS)
    trainer = trainer_class()(model=model, reward_funcs=funcs, args=cfg, train_dataset=dataset,
                              processing_class=processor, peft_config=peft_config,
                              callbacks=[training.MetricsJsonl(out / "metrics.jsonl", step_offset=offset, stage=k),
                                         training.TrainingProgress(f"RL stage {k}/{len(p.stages)}", whole=(
                                             offset, sum(int(s["steps"]) for s in p.stages)))])
    if p.lora_r and resume:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(trainer.model, load_file(str(resume / "adapter_model.safetensors")))
    trainer.stage, trainer.step_offset, trainer.prompt_offset = k, offset, prompt_start
    trainer.n_params = sum(t.numel() for t in model.parameters())
    trainer.samples_path, trainer.sample_every = out / "samples.jsonl", p.sample_every
    trainer.mask_truncated = p.truncated == "mask"
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - t0
    final = sdir / "final"
    # every rank takes part (ZeRO-3 gathers); the main process writes
    trainer.save_model(str(sdir / "adapter" if p.lora_r else final))
    dist.wait()
    if p.lora_r and dist.is_main():  # the next stage starts from merged weights, like a full fine-tune's
        training.merge_adapter(start, sdir / "adapter", final, p.bf16)
    dist.wait()  # nobody reads stage<k>/final (the next stage, its reference, vLLM) before it is complete
    args = trainer.args
    correction = trainer.use_vllm and args.vllm_importance_sampling_correction  # TRL applies it to vLLM rollouts only
    rec = {"stage": k, **stage, "start_from": str(start), "start_sha": start_sha,
           "loaded_sha": loaded_sha, "resumed_from": str(resume) if resume else None,
           "final_sha": checkpoints.saved_weights_sha(final, out / SHA_CACHE) if dist.is_main() else None,
           # the trained weights on each rank (equal under DDP); a ZeRO-3 rank holds only shards
           "trained_sha": None if p.deepspeed or p.lora_r or not per_rank else
           dist.gather([checkpoints.weights_sha(trainer.model)]),
           "trainer_num_generations": args.num_generations, "trainer_max_completion_length": args.max_completion_length,
           "trainer_batch": {"per_device": args.per_device_train_batch_size,
                             "grad_accum": args.gradient_accumulation_steps,
                             "generation_batch": args.generation_batch_size},
           "vllm_is_correction": args.vllm_importance_sampling_mode if correction else "none",
           "vllm_is_cap": args.vllm_importance_sampling_clip_max if correction else None,
           "num_processes": trainer.accelerator.num_processes, "prompts": len(dataset),
           **prompt_record(len(dataset), args.seed, trainer.shuffle_dataset, prompt_start,
                           int(stage["steps"]) * prompts_per_step(args)),
           "seconds": round(seconds, 1), "steps_done": trainer.state.global_step}
    if dist.is_main():
        processor.save_pretrained(str(final))
        (final / "stage.json").write_text(json.dumps(rec, indent=2))  # written last: marks the stage done
    dist.wait()
    del trainer, model
    return rec


def logged_compute(metrics_jsonl: str | Path) -> dict:
    """`train_flops` and `train_tokens` of a run: the per-step counts in metrics.jsonl, summed over
    every step (a step logged twice by a resumed stage counts once)."""
    from visionr1 import curves

    recs = curves.training_records(metrics_jsonl)
    return {"train_flops": float(sum(r.get("compute/flops", 0) for r in recs)),
            "train_tokens": int(sum(r.get("compute/tokens", 0) for r in recs))}


def _copy_model(src: Path, dst: Path) -> None:
    import shutil

    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)


R1_ZERO_SYSTEM_PROMPT = generation.R1_ZERO_SYSTEM_PROMPT


def start_model(v: dict, run: Path) -> str:
    """The model RL starts from: `rl_start` ("ci", "base", "<run>:ci", a path: visionr1.models),
    read from the run named by `rl_source_run` (default: this run)."""
    return models.resolve(v["rl_start"], run, key="rl_start")


def params_from_values(v: dict) -> GRPOParams:
    """GRPOParams from 03_grpo_ptst's params (a dict of its declared keys)."""
    from visionr1 import env

    run = env.run_dir(v["output_root"], v["run_name"])
    source = env.run_dir(v["output_root"], v["rl_source_run"]) if v["rl_source_run"] else run
    data = v["rl_data"] or str(source / "00_data" / "rl")
    system = R1_ZERO_SYSTEM_PROMPT if v["rl_system_prompt"] == "r1-zero" else v["rl_system_prompt"]
    multi = v["rl_num_gpus"] > 1 or v.get("num_machines", 1) > 1
    return GRPOParams.from_values(
        v, model=start_model(v, source), data=data, output_dir=str(run / "03_grpo_ptst"), system_prompt=system,
        seed=v["seed"], report_to="wandb" if v["wandb_mode"] != "disabled" else "none",
        deepspeed=training.deepspeed_config(v["rl_deepspeed"]) if multi else None, run_name=f"{v['run_name']}/03_grpo_ptst")


def context_length(p: GRPOParams, text_tokens: int = 1024) -> int:
    """vLLM's maximum model length for these stages: the largest image at `max_pixels` (one token
    per 28 x 28 pixels after merging), `text_tokens` of question and template (an allowance: RL
    questions are short), and the longest stage's completion. Left unset, vLLM takes the model
    config's 128,000 and reserves KV cache for it."""
    return p.max_pixels // (28 * 28) + text_tokens + max(int(s["max_completion_length"]) for s in p.stages)


def server_command(p: GRPOParams, model: str | None = None) -> list[str]:
    """`trl vllm-serve` for `rollout: vllm_server` on `model` (default: the start model), as `launch`
    starts it for each stage: `vllm_data_parallel` replicas of vllm_gpus / vllm_data_parallel
    tensor-parallel GPUs, the trainer's image budget (the server computes image features itself,
    and TRL places them in the trainer's token runs, which fails when the two resize an image
    differently) and the stages' context length. For a server on another machine (`vllm_server_host`
    names it) this is the command to start there, listening on every interface."""
    from visionr1 import vllm_server

    return [sys.executable, "-m", "trl.scripts.vllm_serve", "--model", model or p.model,
            "--tensor-parallel-size", str(p.vllm_gpus // p.vllm_data_parallel),
            "--data-parallel-size", str(p.vllm_data_parallel), "--max-model-len", str(context_length(p)),
            "--mm-processor-kwargs", json.dumps({"min_pixels": p.min_pixels, "max_pixels": p.max_pixels}),
            "--host", p.vllm_server_host if vllm_server.is_local(p.vllm_server_host) else "0.0.0.0",
            "--port", str(p.vllm_server_port)]


def sft_control(sft_params_json: str | Path, start_model: str, out_dir: str | Path, flops: float, log=print) -> dict:
    """The equal-compute control: more SFT on the cold-start set, from the same start model, for as
    many steps as RL's training compute buys (02's other settings unchanged).

    An SFT step costs 6 x params x tokens (forward and backward over 02's mean sample length x the
    batch); RL's `flops` count its generation and every forward and backward pass from the logged
    token counts (`logged_compute`). Sized by compute, not by the clock, so the control is the same
    on a busy machine. Returns the SFT summary with `final_model` and `flops`."""
    from dataclasses import replace

    sft_params_json = Path(sft_params_json)
    base = sft.SFTParams.from_json(sft_params_json)
    done = json.loads((sft_params_json.parent / "summary.json").read_text())
    n_params = tiny_model.n_params(tiny_model.load_model(start_model))
    step_flops = 6 * n_params * done["tokens_mean"] * base.batch_size * base.grad_accum
    steps = max(1, round(flops / step_flops))
    log(f"SFT control: {steps} steps x {step_flops:.3g} FLOPs (6 x {n_params} params x {done['tokens_mean']} "
        f"tokens x {base.batch_size * base.grad_accum} samples) = RL's {flops:.3g} FLOPs, from {start_model}")
    p = replace(base, model=start_model, output_dir=str(out_dir), max_steps=steps, save_steps=max(steps, 1),
                report_to="none", deepspeed=None, run_name=f"{base.run_name}/sft_control")
    return {**sft.train(p, log=log), "flops": steps * step_flops}


def main(argv: list[str] | None = None) -> int:
    """`python -m visionr1.grpo PARAMS_JSON [--stage K]`: the entry point a launcher runs on every
    process (`--stage K`: that PTST stage only, as `launch` does)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m visionr1.grpo", description=main.__doc__)
    ap.add_argument("params_json")
    ap.add_argument("--stage", type=int, default=None)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    out = train(GRPOParams.from_json(args.params_json), only_stage=args.stage)
    if dist.is_main():
        print(json.dumps(out))
    dist.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
