"""Language ID stage: natural-language documents get (language, score) from fastText and a
bucket (`en`, a configured language, or a drop); code documents get their programming
language and the `code` bucket."""
from __future__ import annotations

from classifiers.langid import LanguageIdentifier, decide, detect_programming_language
from pipeline.stages.base import BatchStage, Doc, with_drop

# Bucket of text documents when language ID is disabled: undetermined (ISO 639-2 `und`).
UNDETERMINED = "und"
CODE_BUCKET = "code"


def assign_code(doc: Doc) -> Doc:
    return {**doc, "language": detect_programming_language(doc.get("path"), doc["text"]),
            "language_score": None, "bucket": CODE_BUCKET}


def assign_undetermined(doc: Doc) -> Doc:
    return {**doc, "language": None, "language_score": None, "bucket": UNDETERMINED}


class LanguageIdStage(BatchStage):
    name = "langid"

    def setup(self) -> None:
        self.model = LanguageIdentifier(self.params)

    def apply(self, docs: list[Doc]) -> list[Doc]:
        texts = [i for i, d in enumerate(docs) if d["kind"] == "text"]
        preds = self.model.predict([docs[i]["text"] for i in texts]) if texts else []
        out = [assign_code(d) if d["kind"] == "code" else d for d in docs]
        for i, (lang, score) in zip(texts, preds):
            bucket, rule = decide(lang, score, self.params)
            new = {**docs[i], "language": lang, "language_score": score, "bucket": bucket}
            out[i] = with_drop(new, self.name, f"langid/{rule}") if rule else new
        return out


class NoLanguageId(BatchStage):
    """langid disabled: code still gets its bucket; text goes to `und`."""
    name = "langid"

    def apply(self, docs: list[Doc]) -> list[Doc]:
        return [assign_code(d) if d["kind"] == "code" else assign_undetermined(d) for d in docs]
