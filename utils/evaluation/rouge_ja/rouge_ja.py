"""`evaluate` wrapper around utils.evaluation.metrics.ja_rouge, loadable offline:

    import evaluate, utils.evaluation.metrics
    rouge = evaluate.load(utils.evaluation.metrics.ROUGE_JA_PATH)
    rouge.compute(predictions=[...], references=[...], tokenizer="mecab")
"""

import datasets
import evaluate

from utils.evaluation.metrics import ja_rouge

_DESCRIPTION = "ROUGE-1/2/L F1 x 100 for Japanese, with MeCab (fugashi + unidic-lite) or character tokens."


class RougeJa(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description="predictions: list[str], references: list[str], tokenizer: 'mecab' | 'char'",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, tokenizer="mecab"):
        return ja_rouge(list(predictions), list(references), tokenizer=tokenizer)
