"""Language ID stage: natural-language documents get (language, score) from fastText, with
lingua's second opinion where the cascade asks for it (classifiers/langid.py), the model that
decided (`language_model`: fasttext or lingua; counters `langid/lingua` and
`langid/lingua_changed`, where lingua's answer differs from fastText's) and a bucket (`en`, a
configured language, or a drop); code documents get their programming language and the `code`
bucket, and so do documents of text sources that the code detector
(classifiers/code_detect.py) takes for source code: they become `kind: code` from here on, so the
code rules judge them (counter `langid/code_in_text`)."""

from __future__ import annotations

from classifiers.code_detect import detect_code
from classifiers.langid import LINGUA, LanguageIdentifier, decide, detect_programming_language
from pipeline.stages.base import BatchStage, Doc, with_drop

# Bucket of text documents when language ID is disabled: undetermined (ISO 639-2 `und`).
UNDETERMINED = "und"
CODE_BUCKET = "code"


def assign_code(doc: Doc) -> Doc:
    return {
        **doc,
        "language": detect_programming_language(doc.get("path"), doc["text"]),
        "language_score": None,
        "bucket": CODE_BUCKET,
    }


def assign_undetermined(doc: Doc) -> Doc:
    return {**doc, "language": None, "language_score": None, "bucket": UNDETERMINED}


class LanguageIdStage(BatchStage):
    name = "langid"
    models = ("model",)

    def setup(self) -> None:
        self.model = LanguageIdentifier(self.params)

    def apply(self, docs: list[Doc]) -> list[Doc]:
        out = [assign_code(d) if d["kind"] == "code" else d for d in docs]
        if self.params.detect_code:
            for i, d in enumerate(docs):
                if d["kind"] == "text":
                    v = detect_code(d["text"], d.get("path"))
                    if v.is_code:
                        out[i] = {
                            **d,
                            "kind": "code",
                            "language": v.language,
                            "language_score": None,
                            "bucket": CODE_BUCKET,
                        }
                        self.counters.inc("langid/code_in_text")
        texts = [i for i, d in enumerate(out) if d["kind"] == "text"]
        preds = self.model.predict_detailed([docs[i]["text"] for i in texts]) if texts else []
        for i, pred in zip(texts, preds):
            bucket, rule = decide(pred.language, pred.score, self.params)
            new = {
                **docs[i],
                "language": pred.language,
                "language_score": pred.score,
                "bucket": bucket,
                "language_model": pred.model,
            }
            if pred.model == LINGUA:
                self.counters.inc("langid/lingua")
                if pred.language != pred.fasttext:
                    self.counters.inc("langid/lingua_changed")
            out[i] = with_drop(new, self.name, f"langid/{rule}") if rule else new
        return out


class NoLanguageId(BatchStage):
    """langid disabled: code still gets its bucket; text goes to `und`."""

    name = "langid"

    def apply(self, docs: list[Doc]) -> list[Doc]:
        return [assign_code(d) if d["kind"] == "code" else assign_undetermined(d) for d in docs]
