"""Cold-start data by Modality Bridging (docs/recipe.md §1): the step the paper's authors never released.

  1. pseudo-CoT   the MLLM sees image + question + answer, writes a caption and step-by-step reasoning
  2. description  the MLLM sees image + question + pseudo-CoT, writes a detailed text description
  3. CoT          a text reasoning LLM sees description + question, writes a long R1-style CoT
  4. filter       keep a sample only if its final answer grades equal to the gold answer and it
                  passes the consistency rules below; every drop is counted by reason
  5. export       the CoT paired back with the image: Vision-R1-cold sharegpt JSON + a LLaMA-Factory
                  dataset_info.json entry, and the rows the SFT stage reads

Raw teacher outputs go to `raw.jsonl` (one line per finished sample, appended, flushed and fsynced
under a lock), so a rerun skips finished ids and a killed run loses only the requests in flight;
a half-written last line left by a kill is cut off on the next open. Filtering is a separate,
cheap pass over raw.jsonl, so its rules can change without calling a teacher again.

Filter rules (ours; the paper's exact rules are not published):
  truncated            the CoT stopped at the token limit, or has no closing </think>
  no_answer            no final answer after the think block
  wrong_answer         the final answer does not grade equal to the gold answer (grading.is_equivalent)
  inconsistent         the conclusion at the end of the think block ("the result is X", "the answer
                       is X", the last \\boxed{}) contradicts the final answer
  mentions_description after word replacement the CoT still speaks of "the description"
Word replacement makes the CoT speak of the image: "the description" -> "the image", "described"
-> "shown", "According to the image description" -> "Looking at the image", ...
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from importlib import resources
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from visionr1 import grading

STEPS = ("pseudo_cot", "description", "cot")
# The paper's self-reflection words, one list. Its table counts all five over whole cold-start sets
# (docs/recipe.md §1; 01's statistics); its analysis (C) counts only Wait, Hmm and Alternatively, in
# 50 MathVerse outputs per model (docs/recipe.md §6), and 05 counts that subset to compare with it.
REFLECTION_WORDS = ("Wait", "Hmm", "Mistake", "Alternatively", "Check")
OUTPUT_REFLECTION_WORDS = ("Wait", "Hmm", "Alternatively")  # analysis (C): a model's outputs (05)
_ALSO_LOWER_CASE = ("Mistake", "Check")  # written mid-sentence too ("let me check", "a mistake")


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------
def load_prompts(prompt_set: str = "default") -> dict[str, str]:
    """The three templates of prompts/<prompt_set>/ (see prompts/README.md)."""
    base = resources.files("visionr1") / "prompts" / prompt_set
    if not base.is_dir():
        sets = sorted(p.name for p in (resources.files("visionr1") / "prompts").iterdir() if p.is_dir())
        raise ValueError(f"unknown prompt set {prompt_set!r}; available: {', '.join(sets)}")
    return {step: (base / f"{step}.txt").read_text() for step in STEPS}


# ---------------------------------------------------------------------------------------------
# Durable, resumable JSONL
# ---------------------------------------------------------------------------------------------
class JsonlStore:
    """Append-only JSONL keyed by `id`: each record is one line, flushed and fsynced, so a kill
    at any moment leaves complete lines plus at most one partial last line, which is cut off
    when the store is opened again (never read as a record, never duplicated)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.records: dict[str, dict] = {}
        self._repair_and_load()
        self._fh = self.path.open("a", encoding="utf-8")

    def _repair_and_load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                break  # a partial last line: the process died while writing it
            line = data[pos:nl]
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn write in the middle can only be the last line we wrote
            self.records.setdefault(rec["id"], rec)
            good_end = pos = nl + 1
        if good_end < len(data):
            with self.path.open("r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())

    def __contains__(self, rid: str) -> bool:
        return rid in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, rec: dict) -> None:
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self.lock:
            if rec["id"] in self.records:
                return  # already finished: never write a duplicate
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.records[rec["id"]] = rec

    def close(self) -> None:
        self._fh.close()


# ---------------------------------------------------------------------------------------------
# Bridging
# ---------------------------------------------------------------------------------------------
def _image(row: dict, base_dir: Path | None):
    img = row.get("image")
    if isinstance(img, (str, Path)):
        p = Path(img)
        return Image.open(p if p.is_absolute() or base_dir is None else base_dir / p).convert("RGB")
    return img


def bridge_one(row: dict, mllm, reasoner, prompts: dict[str, str], base_dir: Path | None = None) -> dict:
    """The three steps for one source row; returns the raw record (image kept as a path/id)."""
    image = _image(row, base_dir)
    t0 = time.perf_counter()
    pseudo = mllm.complete("pseudo_cot", prompts["pseudo_cot"].format(question=row["question"], answer=row["answer"]),
                           image, row)
    desc = mllm.complete("description", prompts["description"].format(question=row["question"], pseudo_cot=pseudo.text),
                         image, row)
    cot = reasoner.complete("cot", prompts["cot"].format(description=desc.text, question=row["question"]), None, row)
    rec = {k: row[k] for k in ("id", "question", "answer") if k in row}
    rec["image"] = row["image"] if isinstance(row.get("image"), (str, Path)) else row.get("image_path")
    rec["image"] = str(rec["image"]) if rec["image"] is not None else None
    for k in ("choices", "qtype", "level"):
        if k in row:
            rec[k] = row[k]
    rec.update(pseudo_cot=pseudo.text, description=desc.text, cot=cot.text, cot_truncated=cot.truncated,
               description_truncated=desc.truncated, seconds=round(time.perf_counter() - t0, 3))
    if "oracle_error" in cot.meta:
        rec["oracle_error"] = cot.meta["oracle_error"]
    return rec


def bridge(rows: list[dict], mllm, reasoner, prompt_set: str, out_jsonl: str | Path, concurrency: int = 16,
           progress: bool = True, base_dir: str | Path | None = None, max_failures: int | None = None) -> dict:
    """Run the three steps for every row not yet in `out_jsonl`, `concurrency` rows at a time.

    A row whose requests fail after the client's retries is counted in `failed` (with the first
    errors kept) and left for the next run; past `max_failures` failures the run stops.
    """
    prompts = load_prompts(prompt_set)
    store = JsonlStore(out_jsonl)
    todo = [r for r in rows if r["id"] not in store]
    base = Path(base_dir) if base_dir is not None else None
    stats = {"rows": len(rows), "done_before": len(rows) - len(todo), "written": 0, "failed": 0, "errors": []}
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="modality bridging", unit="sample", disable=not progress)
    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            pending = {}
            it = iter(todo)

            def submit_next() -> bool:
                row = next(it, None)
                if row is None:
                    return False
                pending[pool.submit(bridge_one, row, mllm, reasoner, prompts, base)] = row
                return True

            for _ in range(max(1, concurrency)):  # at most `concurrency` rows in flight
                if not submit_next():
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    row = pending.pop(fut)
                    try:
                        store.append(fut.result())
                        stats["written"] += 1
                    except Exception as e:  # noqa: BLE001 - a teacher failure skips the row, counted
                        stats["failed"] += 1
                        if len(stats["errors"]) < 10:
                            stats["errors"].append(f"{row['id']}: {type(e).__name__}: {e}")
                        if max_failures is not None and stats["failed"] > max_failures:
                            raise RuntimeError(f"modality bridging: {stats['failed']} rows failed; first errors:\n  "
                                               + "\n  ".join(stats["errors"])) from e
                    bar.update(1)
                    submit_next()
    finally:
        bar.close()
        store.close()
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    stats["records_per_s"] = round(stats["written"] / stats["seconds"], 2) if stats["seconds"] else None
    return stats


def load_source(path: str | Path, limit: int | None = None) -> list[dict]:
    """Source rows {id, image (path relative to the file), question, answer, ...} from a JSONL file;
    a row without id, image, question or answer fails with the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cold-start source not found: {path} (run 00_data first, or set cs_source)")
    rows = []
    with path.open() as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e})") from None
            missing = [k for k in ("id", "image", "question", "answer") if k not in row]
            if missing:
                raise ValueError(f"{path}:{i}: row lacks {', '.join(missing)}")
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    return rows


def read_raw(path: str | Path) -> list[dict]:
    """The finished records sorted by id: the file is in completion order, which differs from run
    to run with concurrent teachers, and the export (and with it the SFT data order) must not."""
    return sorted(JsonlStore(path).records.values(), key=lambda r: str(r["id"]))


# ---------------------------------------------------------------------------------------------
# Post-processing
# ---------------------------------------------------------------------------------------------
REPLACEMENTS = [  # (pattern, replacement); the case of the first letter is kept
    (r"\baccording to the (?:image )?description\b", "looking at the image"),
    (r"\bfrom the (?:image )?description\b", "from the image"),
    (r"\bthe (?:image )?description (?:says|states|mentions|lists|shows)\b", "the image shows"),
    (r"\bthe (?:image )?description\b", "the image"),
    (r"\bas described\b", "as shown"),
    (r"\bdescribed\b", "shown"),
]
_CONCLUSION = re.compile(r"(?:the (?:final )?(?:answer|result) is|answer:)\s*\(?([^\s.,;()]+)\)?", re.I)


def replace_words(text: str) -> str:
    """Make a CoT written from a text description speak of the image."""
    for pattern, repl in REPLACEMENTS:
        text = re.sub(pattern, lambda m, r=repl: r[0].upper() + r[1:] if m.group(0)[0].isupper() else r,
                      text, flags=re.I)
    return text


def split_cot(text: str) -> tuple[str | None, str]:
    """(think, rest) of a reasoner output `[<think>] ... </think> rest`; think None if unclosed."""
    if "</think>" not in text:
        return None, text
    think, rest = text.split("</think>", 1)
    return think.replace("<think>", "").strip(), rest.strip()


MC_ANSWERS = ("letter", "value")


def check_record(rec: dict, mc_answer: str = "letter") -> tuple[str | None, dict | None]:
    """(drop reason, None) or (None, cleaned sample) for one raw record. A multiple-choice answer is
    written into the sample's answer block as its option's letter (`mc_answer` "letter") or as the
    option's text ("value": the grader maps it to the letter, as MathVista's extraction does)."""
    if mc_answer not in MC_ANSWERS:
        raise ValueError(f"mc_answer (cs_mc_answer) must be one of {MC_ANSWERS}, got {mc_answer!r}")
    if rec.get("cot_truncated"):
        return "truncated", None
    think, rest = split_cot(rec["cot"])
    if think is None:
        return "truncated", None
    choices = rec.get("choices")
    final = grading.extract_answer(rest, choices, block_only=False).answer if rest else None
    if not final:
        return "no_answer", None
    if not grading.is_equivalent(final, str(rec["answer"]), choices=choices):
        return "wrong_answer", None
    concluded = None
    for m in _CONCLUSION.finditer(think[-600:]):
        concluded = m.group(1)
    boxed = grading.last_boxed(think)
    concluded = boxed if boxed is not None else concluded
    if concluded is not None and not (grading.is_equivalent(concluded, final, choices=choices)
                                      or grading.is_equivalent(concluded, str(rec["answer"]), choices=choices)
                                      or _names_option_value(concluded, final, choices)):
        return "inconsistent", None
    think = replace_words(think)
    if re.search(r"\bdescription\b", think, re.I):
        return "mentions_description", None
    answer = final
    if choices:
        letter = grading.match_option(final, choices)
        answer = letter if mc_answer == "letter" else choices[grading.LETTERS.index(letter)] if letter else final
    return None, {"id": rec["id"], "image": rec["image"], "question": rec["question"], "answer": str(rec["answer"]),
                  "response": f"<think> {think} </think><answer> {answer} </answer>"}


def _names_option_value(concluded: str, final: str, choices) -> bool:
    """'the result is 5' and a final answer 'B' agree when option B is 5."""
    if not choices:
        return False
    letter = grading.match_option(final, choices)
    return letter is not None and grading.normalize(concluded) == grading.normalize(choices["ABCD".index(letter)])


def filter_records(raw: list[dict], mc_answer: str = "letter") -> tuple[list[dict], Counter]:
    """Keep the records that pass every rule; count drops by reason (check_record)."""
    kept, drops = [], Counter()
    for rec in raw:
        reason, sample = check_record(rec, mc_answer)
        if reason:
            drops[reason] += 1
        else:
            kept.append(sample)
    return kept, drops


# ---------------------------------------------------------------------------------------------
# Export and statistics
# ---------------------------------------------------------------------------------------------
def export(samples: list[dict], out_dir: str | Path, image_root: str | Path, name: str = "vision_r1_cold_nano") -> dict:
    """Write the Vision-R1-cold sharegpt JSON (rows {id, image, conversations} with human/gpt turns,
    as vision_r1_llava_cot_full.json), its dataset_info.json entry, and sft.jsonl rows
    {id, images: [absolute path], messages: [user, assistant]} for the SFT stage."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(image_root)
    rows, sft = [], []
    for s in samples:
        img = Path(s["image"])
        abs_img = img if img.is_absolute() else root / img
        rel = os.path.relpath(abs_img, out)
        rows.append({"id": s["id"], "image": rel, "conversations": [
            {"from": "human", "value": "<image>" + s["question"]}, {"from": "gpt", "value": s["response"]}]})
        sft.append({"id": s["id"], "images": [str(abs_img)], "messages": [
            {"role": "user", "content": "<image>" + s["question"]}, {"role": "assistant", "content": s["response"]}],
            "answer": s["answer"]})
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    info = {name: {"file_name": f"{name}.json", "formatting": "sharegpt",
                   "columns": {"messages": "conversations", "images": "image"}}}
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2))
    with (out / "sft.jsonl").open("w") as f:
        for r in sft:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return {"sharegpt": str(out / f"{name}.json"), "dataset_info": str(out / "dataset_info.json"),
            "sft_rows": str(out / "sft.jsonl"), "n": len(rows)}


def reflection_counts(texts: list[str], words: tuple[str, ...] = REFLECTION_WORDS) -> dict[str, int]:
    """Occurrences of each of `words` (REFLECTION_WORDS or its subset) as a whole word: Wait, Hmm and
    Alternatively case-sensitive, as sentence openers ("wait" and "Waiting" are not counted); Mistake
    and Check in either case.

    >>> reflection_counts(["Wait, 3. Hmm. Wait", "Alternatively, Waiting. Let me check: no mistake. Check."])
    {'Wait': 2, 'Hmm': 1, 'Mistake': 1, 'Alternatively': 1, 'Check': 2}
    >>> reflection_counts(["Wait. wait, Hmm"], OUTPUT_REFLECTION_WORDS)
    {'Wait': 1, 'Hmm': 1, 'Alternatively': 0}
    """
    unknown = [w for w in words if w not in REFLECTION_WORDS]
    if unknown:
        raise ValueError(f"not reflection words: {unknown}; the list is cold_start.REFLECTION_WORDS {REFLECTION_WORDS}")
    out = {}
    for w in words:
        pattern = rf"\b(?:{w}|{w.lower()})\b" if w in _ALSO_LOWER_CASE else rf"\b{w}\b"
        out[w] = sum(len(re.findall(pattern, t)) for t in texts)
    return out

