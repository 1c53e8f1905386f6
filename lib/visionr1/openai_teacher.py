"""The name `visionr1.openai_teacher.OpenAITeacher`, kept for its importers (bench/cold_start_http.py).

The OpenAI-compatible teacher lives in visionr1.teachers with the other teachers; its client and
its image encoding are built in visionr1.backends.
"""

from __future__ import annotations

from visionr1.teachers import OpenAITeacher

__all__ = ["OpenAITeacher"]
