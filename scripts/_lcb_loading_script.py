"""Loading script for a local LiveCodeBench `code_generation_lite` directory (evalkit fixture).

OpenCompass calls `datasets.load_dataset(<dir>, split="test", version_tag=..., trust_remote_code=True)`,
as the upstream dataset does, so the directory carries a script that understands `version_tag`.
Every release tag reads test.jsonl here (the fixture has a single release).
"""

import json

import datasets

_FEATURES = datasets.Features({
    name: datasets.Value("string")
    for name in ("question_title", "question_content", "platform", "question_id", "contest_id", "contest_date",
                 "starter_code", "difficulty", "public_test_cases", "private_test_cases", "metadata")
})
_TAGS = ("release_v1", "release_v2", "release_v3", "release_v4", "release_v5", "release_v6", "release_latest")


class LCBCodeGenConfig(datasets.BuilderConfig):
    def __init__(self, version_tag="release_latest", **kwargs):
        super().__init__(name=version_tag, version=datasets.Version("1.0.0"), **kwargs)
        self.version_tag = version_tag


class LCBCodeGen(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = LCBCodeGenConfig
    BUILDER_CONFIGS = [LCBCodeGenConfig(version_tag=tag) for tag in _TAGS]
    DEFAULT_CONFIG_NAME = "release_latest"

    def _info(self):
        return datasets.DatasetInfo(description="LiveCodeBench code generation (local copy)", features=_FEATURES)

    def _split_generators(self, dl_manager):
        path = dl_manager.download_and_extract("test.jsonl")
        return [datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"path": path})]

    def _generate_examples(self, path):
        with open(path, encoding="utf-8") as f:
            for key, line in enumerate(f):
                yield key, json.loads(line)
