"""Prompt templates with stable ids (the id is stored in every record's provenance)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    id: str
    system: str
    user: str  # str.format template

    @property
    def version(self) -> str:
        """``id@sha256[:12]`` of the template text: changes whenever the wording changes."""
        import hashlib

        h = hashlib.sha256(f"{self.id}\x1f{self.system}\x1f{self.user}".encode()).hexdigest()
        return f"{self.id}@{h[:12]}"

    def messages(self, **kw: str) -> tuple[tuple[str, str], ...]:
        msgs = []
        if self.system:
            msgs.append(("system", self.system))
        msgs.append(("user", self.user.format(**kw)))
        return tuple(msgs)


TEMPLATES: dict[str, Template] = {t.id: t for t in [
    Template(
        "math_cot_v1",
        "Solve the math problem. Explain the steps briefly, then end with 'The answer is N.' "
        "where N is a number.",
        "{problem}",
    ),
    Template(
        "math_pot_v1",
        "Write a short Python program that computes the answer to the math problem and prints "
        "only the final answer. Put the program in a ```python code block.",
        "{problem}",
    ),
    Template(
        "math_problem_from_seed_v1",
        "You write new grade-school math word problems. Reply with the new problem only.",
        "Here is an example problem:\n{seed}\n\nWrite one new, different word problem of similar "
        "difficulty with a single numeric answer.",
    ),
    Template(
        "math_problem_from_concept_v1",
        "You write new grade-school math word problems. Reply with the new problem only.",
        "Write one word problem that practises these concepts: {concepts}. It must have a single "
        "numeric answer.",
    ),
    Template(
        "code_task_v1",
        "You write Python programming exercises with tests. Reply with a ```python block that "
        "defines the function, then a second ```python block with assert statements testing it.",
        "Write a small exercise about: {topic}",
    ),
    Template(
        "math_judge_v1",
        "You check math word problems. A problem is SOUND when it is self-consistent, gives all "
        "the information needed and has exactly one numeric answer, and the proposed solution's "
        "final answer follows from it. Otherwise it is FLAWED. Reply with one line "
        "'VERDICT: SOUND' or 'VERDICT: FLAWED', then one sentence saying why.",
        "Problem:\n{problem}\n\nProposed solution:\n{solution}",
    ),
    Template(
        "decontam_judge_v1",
        "You compare two math word problems. They are the SAME problem when one is a "
        "rewording of the other: names, objects or wording may differ, but the quantities, "
        "the relations between them and the question asked are the same, so both have the "
        "same answer. Otherwise they are DIFFERENT. Reply with one line 'VERDICT: SAME' or "
        "'VERDICT: DIFFERENT'.",
        "Problem A:\n{problem}\n\nProblem B:\n{benchmark}",
    ),
    Template(
        "code_solve_v1",
        "Solve the programming task in Python. Reply with one ```python code block.",
        "{problem}",
    ),
]}


def get_template(template_id: str) -> Template:
    try:
        return TEMPLATES[template_id]
    except KeyError:
        raise ValueError(
            f"unknown prompt template {template_id!r}; known: {', '.join(sorted(TEMPLATES))}"
        ) from None
