"""Every workaround for the pinned libraries, in one place, each with the version it was written
for and a check that says whether it is still needed (docs/platform.md: the TRL section and "Several processes").

After a version bump, run `python -m visionr1.compat`: it prints each workaround, whether the
installed version is the one it was written for, and what its check finds now. `tests/test_compat.py`
fails when a pinned version changes or a check no longer finds the problem, so a bump cannot pass
without someone looking here. A workaround whose check returns False can be deleted, with the code
at its `where`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import sys
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Workaround:
    name: str
    library: str          # the distribution whose behaviour it works around
    version: str          # the version it was written and checked for
    where: str            # the code that applies it
    why: str
    still_needed: Callable[[], bool | None]  # True: the problem is there; False: gone; None: not checkable here


# ---------------------------------------------------------------------------------------------
# TRL 1.15 computes token log-probabilities with a Triton kernel only
# ---------------------------------------------------------------------------------------------
def _triton_missing() -> bool:
    from trl.trainer import utils as trl_utils

    return getattr(trl_utils, "_ChunkedLogProbFunction", None) in (None, TorchChunkedLogProb)


class TorchChunkedLogProb:
    """Plain-torch stand-in for trl.kernels.ChunkedLogProbFunction (same arguments and outputs):
    per-token log-probabilities of `targets` and the optional statistics, differentiable by
    autograd. It materializes the [tokens, vocab] logits, which is fine for the nano vocabulary."""

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
              logit_scale=1.0, outputs=("log_probs",)):
        import torch

        z = torch.nn.functional.linear(hidden, weight, bias).float() * logit_scale
        if final_logit_softcapping is not None:
            z = final_logit_softcapping * torch.tanh(z / final_logit_softcapping)
        z = z / temperature
        log_z = torch.logsumexp(z, dim=-1)
        target = z.gather(-1, targets[:, None]).squeeze(-1)
        logp = target - log_z
        probs = torch.softmax(z, dim=-1) if {"entropy", "log_sum_sq_probs"} & set(outputs) else None
        entropy = log_z - (probs * z).sum(-1) if "entropy" in outputs else None
        lssp = torch.log((probs ** 2).sum(-1)) if "log_sum_sq_probs" in outputs else None
        mean_logits = z.mean(-1) if "mean_logits" in outputs else None
        is_top1 = (target >= z.max(-1).values) if "is_top1" in outputs else None
        return logp, entropy, lssp, mean_logits, is_top1


def torch_logprobs_fallback() -> bool:
    """GRPO: where Triton is missing (the CPU stack), put the plain-torch equivalent in place of
    TRL's fused kernel. Returns True when it was needed."""
    from trl.trainer import utils as trl_utils

    if not _triton_missing():
        return False
    trl_utils._ChunkedLogProbFunction = TorchChunkedLogProb
    return True


def sft_trainer_class():
    """TRL's SFTTrainer; without Triton a subclass computing the loss with the model's own
    cross-entropy (transformers' Trainer.compute_loss), since TRL's goes through the kernel."""
    from trl import SFTTrainer

    if not _triton_missing():
        return SFTTrainer
    from transformers import Trainer

    class SFTTrainerWithoutTriton(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return SFTTrainerWithoutTriton


# ---------------------------------------------------------------------------------------------
# transformers 5.17 copies the whole KV cache per step for grouped-query attention under a mask
# ---------------------------------------------------------------------------------------------
def _gqa_refused_with_mask() -> bool:
    """transformers' `use_gqa_in_sdpa` (outside XPU) lets SDPA share key/value heads only when
    there is no attention mask; batched generation always has one (left padding), so every decoding
    step runs `repeat_kv`, a full copy of the cache, in every layer."""
    from transformers.integrations import sdpa_attention

    original = getattr(sdpa_attention.use_gqa_in_sdpa, "original", sdpa_attention.use_gqa_in_sdpa)
    return "attention_mask is None" in inspect.getsource(original)


def sdpa_gqa_without_grad() -> bool:
    """Generation and evaluation on CPU: SDPA shares each key/value head across its query group
    (`enable_gqa=True`) even under a padding mask, instead of transformers' `repeat_kv` copy.

    Only where autograd is off and the tensors are on the CPU. There the logits and the sampled
    tokens are bit-identical to transformers' path (tests/test_compat.py), and sampled nano rollouts
    run about 1.8x faster (bench/generation.py). With autograd on, the key/value gradients are
    summed in another order (last-bit differences), so training keeps transformers' path; on CUDA,
    SDPA with a mask and GQA falls back to its math kernel, which is why transformers refuses it
    there. Idempotent; returns True when it installed the predicate now."""
    import torch
    from transformers.integrations import sdpa_attention

    if hasattr(sdpa_attention.use_gqa_in_sdpa, "original"):
        return False
    original = sdpa_attention.use_gqa_in_sdpa

    def use_gqa_in_sdpa(attention_mask, key, value) -> bool:
        if key.device.type == "cpu" and not torch.is_grad_enabled() and key.shape[-1] == value.shape[-1]:
            return True
        return original(attention_mask, key, value)

    use_gqa_in_sdpa.original = original
    sdpa_attention.use_gqa_in_sdpa = use_gqa_in_sdpa
    return True


# ---------------------------------------------------------------------------------------------
# transformers 5.17's DynamicLayer copies the whole KV cache at every decoding step (torch.cat)
# ---------------------------------------------------------------------------------------------
def _cache_grows_by_cat() -> bool:
    """`DynamicLayer.update` appends each step's keys and values with `torch.cat`: a new tensor and a
    copy of the whole cache per layer per decoding step, quadratic in the generated length."""
    from transformers import cache_utils

    original = getattr(cache_utils.DynamicLayer.update, "original", cache_utils.DynamicLayer.update)
    return "torch.cat([self.keys, key_states]" in inspect.getsource(original)


def kv_cache_in_place_without_grad() -> bool:
    """Generation on CPU without grad: the KV cache grows in place inside a buffer of twice the
    length it needs (amortized doubling), and `keys` / `values` are views of its filled part, instead
    of transformers' `torch.cat` of the whole cache at every step.

    The attention reads the same values in the same order, so logits and sampled tokens are
    bit-identical to transformers' path (tests/test_compat.py); generation runs 1.04-1.24x faster on
    top of `sdpa_gqa_without_grad` (bench/generation.py). After `crop` the cache is still a prefix of
    the buffer and the next step writes over the dropped positions; a cache that
    `batch_select_indices` or `batch_repeat_interleave` replaced is copied into a new buffer. With
    autograd on, or off the CPU, transformers' own update runs. Idempotent; returns True when it
    installed the method now."""
    import torch
    from transformers import cache_utils

    layer = cache_utils.DynamicLayer
    if hasattr(layer.update, "original"):
        return False
    original = layer.update

    def update(self, key_states, value_states, *args, **kwargs):
        # the prompt's pass (and every one-pass forward: reference and old-policy log-probs) as before
        if torch.is_grad_enabled() or key_states.device.type != "cpu" or self.get_seq_length() == 0:
            return original(self, key_states, value_states, *args, **kwargs)
        filled, new = self.get_seq_length(), key_states.shape[-2]
        buf = getattr(self, "_inplace_buffer", None)
        fits = (buf is not None and buf[0].shape[-2] >= filled + new  # the cache is still the buffer's prefix
                and self.keys._base is buf[0] and self.keys.data_ptr() == buf[0].data_ptr()
                and self.values._base is buf[1] and self.values.data_ptr() == buf[1].data_ptr())
        if not fits:
            size = 2 * (filled + new)
            keys = key_states.new_empty(*key_states.shape[:-2], size, key_states.shape[-1])
            values = value_states.new_empty(*value_states.shape[:-2], size, value_states.shape[-1])
            keys[:, :, :filled] = self.keys
            values[:, :, :filled] = self.values
            self._inplace_buffer = buf = (keys, values)
        buf[0][:, :, filled:filled + new] = key_states
        buf[1][:, :, filled:filled + new] = value_states
        self.keys, self.values = buf[0][:, :, :filled + new], buf[1][:, :, :filled + new]
        return self.keys, self.values

    update.original = original
    layer.update = update
    return True


# ---------------------------------------------------------------------------------------------
# Checks of the other workarounds, read from the installed sources
# ---------------------------------------------------------------------------------------------
def _source(module: str, attr: str | None = None) -> str:
    mod = importlib.import_module(module)
    return inspect.getsource(getattr(mod, attr) if attr else mod)


def _truncation_masks_attention() -> bool:
    """TRL's `mask_truncated_completions` zeroes `completion_mask`, which is also the attention
    mask, instead of only the loss: Qwen2.5-VL then computes its 3-D positions for a prompt
    followed by nothing."""
    src = _source("trl.trainer.grpo_trainer", "GRPOTrainer")
    return "completion_mask = completion_mask * (~is_truncated)" in src


def _colocate_sends_expanded_ids() -> bool:
    """TRL's colocated vLLM gets `prompt_token_ids` (images already expanded into pad runs) plus
    the images, which vLLM 0.31 expands again (TRL #6294)."""
    src = _source("trl.generation.vllm_generation")
    return 'row = {"prompt_token_ids": ids}' in src and 'row["multi_modal_data"]' in src


PRIVATE_HOOKS = {  # TRL private methods grpo.trainer_class overrides, with the arguments it relies on
    "_generate": ["self", "prompts"],
    "_generate_and_score_completions": ["self", "inputs"],
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_get_train_sampler": ["self", "dataset"],
}


def _stages_restart_the_prompts() -> bool:
    """TRL's RepeatSampler takes no starting position and every trainer seeds it with args.seed: a
    new trainer per PTST stage would start the same permutation of the prompts again."""
    from trl.trainer.utils import RepeatSampler

    src = _source("trl.trainer.grpo_trainer", "GRPOTrainer")
    return (list(inspect.signature(RepeatSampler.__init__).parameters) ==
            ["self", "data_source", "mini_repeat_count", "batch_size", "repeat_count", "shuffle", "seed"]
            and "seed=self.args.seed" in src)


def _is_correction_on_by_default() -> bool:
    """GRPOConfig turns vLLM importance sampling on unless told otherwise (sequence_mask, cap 3)."""
    from trl import GRPOConfig

    defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    return defaults["vllm_importance_sampling_correction"] is True


def _client_holds_group_port_until_exit() -> bool:
    """VLLMClient keeps its weight-sync group (the trainer binds vllm_group_port) until the process
    exits: a second trainer in the same process binds the port again."""
    return "atexit.register(self.close_communicator)" in _source("trl.generation.vllm_client")


def _private_hooks_unchanged() -> bool:
    """True while GRPOTrainer still has the private methods the staged trainer overrides, with the
    same arguments: the instrumentation (timings, FLOPs, grading counters, samples) hangs on them."""
    from trl import GRPOTrainer

    return all(hasattr(GRPOTrainer, m) and list(inspect.signature(getattr(GRPOTrainer, m)).parameters) == args
               for m, args in PRIVATE_HOOKS.items())


# docs/platform.md "Several processes": TRL 1.15 sends colocated vLLM the processor's prompt ids, in
# which every image is already expanded into its run of <|image_pad|> tokens; vLLM 0.31 expands the
# first pad again and leaves the rest as text (TRL issue #6294). Nothing errors: rollouts would be
# sampled from corrupted prompts and trained against clean ones.
COLOCATE_REFUSED = (
    "rl_rollout: vllm_colocate is refused: with trl 1.15 / vllm 0.31, colocated vLLM receives image prompts "
    "whose <|image_pad|> runs are already expanded and samples rollouts from a corrupted prompt without any "
    "error (TRL issue #6294). Use rl_rollout: vllm_server (03 starts `trl vllm-serve` for each stage on "
    "rl_vllm_gpus GPUs beside the rl_num_gpus training ones) or rl_rollout: hf.")


WORKAROUNDS = (
    Workaround("torch log-probs without Triton", "trl", "1.15.0", "compat.torch_logprobs_fallback (grpo.trainer_class)",
               "GRPOTrainer scores tokens with trl.kernels' Triton kernel only; the CPU stack has no Triton",
               _triton_missing),
    Workaround("SFT loss without Triton", "trl", "1.15.0", "compat.sft_trainer_class (sft.train)",
               "SFTTrainer.compute_loss goes through the same kernel", _triton_missing),
    Workaround("truncated completions: loss mask only", "trl", "1.15.0",
               "grpo.trainer_class: mask_truncated (rl_truncated: mask)",
               "TRL's mask_truncated_completions also masks attention, which breaks Qwen2.5-VL's 3-D positions",
               _truncation_masks_attention),
    Workaround("vllm_colocate refused", "trl", "1.15.0", "compat.COLOCATE_REFUSED (grpo.GRPOParams, validate)",
               "colocated vLLM samples from image prompts it corrupts, without an error (TRL #6294)",
               _colocate_sends_expanded_ids),
    Workaround("GRPOTrainer private hooks", "trl", "1.15.0", "grpo.trainer_class (StagedGRPOTrainer)",
               "timings, FLOPs, grading counters and samples are taken by overriding private methods",
               _private_hooks_unchanged),
    Workaround("PTST stages continue through the prompts", "trl", "1.15.0",
               "grpo.prompt_sampler (StagedGRPOTrainer._get_train_sampler)",
               "each stage is a new trainer whose RepeatSampler restarts the same permutation: stage 2 would "
               "re-train on stage 1's prompts", _stages_restart_the_prompts),
    Workaround("vLLM importance sampling set explicitly", "trl", "1.15.0",
               "grpo.grpo_config (rl_vllm_is_correction, rl_vllm_is_cap)",
               "GRPOConfig turns it on by default (sequence_mask: a completion whose ratio exceeds 3 gets weight "
               "0); the paper trained without it", _is_correction_on_by_default),
    Workaround("one process per stage with vllm_server", "trl", "1.15.0",
               "grpo.launch / grpo.train (a launched process per stage), visionr1.vllm_server",
               "VLLMClient keeps its weight-sync group port until its process exits (atexit); a second "
               "stage's trainer in the same process binds it again", _client_holds_group_port_until_exit),
    Workaround("SDPA shares key/value heads under a mask (CPU, no grad)", "transformers", "5.17.0",
               "compat.sdpa_gqa_without_grad (generation.generate, grpo.trainer_class)",
               "transformers repeats every GQA key/value head (a copy of the KV cache per decoding step) whenever "
               "there is an attention mask; on CPU without grad SDPA's enable_gqa gives the same bits, faster",
               _gqa_refused_with_mask),
    Workaround("KV cache grown in place (CPU, no grad)", "transformers", "5.17.0",
               "compat.kv_cache_in_place_without_grad (generation.generate, grpo.trainer_class)",
               "DynamicLayer.update concatenates the whole KV cache with each step's keys and values (a copy per "
               "layer per decoding step); on CPU without grad a buffer filled in place gives the same bits, faster",
               _cache_grows_by_cat),
    Workaround("resume reloads Qwen2.5-VL weights", "transformers", "5.17.0",
               "sft.train, grpo.train (from_pretrained on the checkpoint before resume_from_checkpoint)",
               "Trainer's resume restores optimizer and step but not Qwen2.5-VL's weights "
               "(tests/test_sft.py::test_resume_restores_the_checkpoint_weights checks the weights come back)",
               lambda: None),
    Workaround("unsloth first, with max_seq_length", "unsloth", "2026.10.7", "sft.train, sft.load_model_for",
               "unsloth patches trl and transformers only when imported first, and cuts samples at its default "
               "max_seq_length=2048 unless given the cutoff", lambda: None),
)


def installed(library: str) -> str | None:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None


def report() -> list[dict]:
    """One row per workaround: pinned and installed versions, and what its check finds now."""
    rows = []
    for w in WORKAROUNDS:
        try:
            needed = w.still_needed()
        except Exception as e:  # noqa: BLE001 - a check that cannot run says so instead of failing the report
            needed = f"check failed: {type(e).__name__}: {e}"
        rows.append({"name": w.name, "library": w.library, "pinned": w.version, "installed": installed(w.library),
                     "still_needed": needed, "where": w.where, "why": w.why})
    return rows


def main() -> int:
    for r in report():
        same = "same" if r["pinned"] == r["installed"] else f"installed {r['installed']}"
        print(f"- {r['name']} ({r['library']} {r['pinned']}, {same}): still needed: {r['still_needed']}\n"
              f"    where: {r['where']}\n    why: {r['why']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
