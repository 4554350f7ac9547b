"""LoRA adapters: separate model ids (per-request choice), runtime load/unload, merged mode."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from inference_server.settings import ServerSettings

from .conftest import MODEL_NAME, RunningServer, serve


def _complete(server: RunningServer, model: str, prompt: str = "adapter test") -> list[int]:
    body = {"model": model, "prompt": prompt, "max_tokens": 12, "temperature": 0,
            "ignore_eos": True}  # fmt: skip
    with server.client() as c:
        r = c.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]  # type: ignore[no-any-return]


def _reference(base: Path, adapters: list[Path], weights: list[float] | None = None) -> str:
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if adapters:
        peft = PeftModel.from_pretrained(model, adapters[0], adapter_name="a0")
        for i, path in enumerate(adapters[1:], 1):
            peft.load_adapter(path, adapter_name=f"a{i}")
        if weights is not None:
            names = [f"a{i}" for i in range(len(adapters))]
            peft.add_weighted_adapter(names, weights, "combo", combination_type="cat")
            peft.set_adapter("combo")
        model = peft.merge_and_unload()
    ids = tok("adapter test", return_tensors="pt")["input_ids"]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                         do_sample=False, eos_token_id=None)  # fmt: skip
    return str(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


def test_a_request_naming_an_adapter_uses_it_others_do_not(
    server: RunningServer, tiny_model: Path, adapters_dir: Path
) -> None:
    base = _complete(server, MODEL_NAME)
    tuned = _complete(server, "alpha")
    assert base == _reference(tiny_model, [])
    assert tuned == _reference(tiny_model, [adapters_dir / "alpha"])
    assert tuned != base


def test_load_and_unload_at_run_time(server: RunningServer, spare_adapter: Path) -> None:
    with server.client() as c:
        r = c.post("/v1/completions", json={"model": "beta", "prompt": "x"})
        assert r.status_code == 404
        r = c.post("/v1/load_lora_adapter",
                   json={"lora_name": "beta", "lora_path": str(spare_adapter)})  # fmt: skip
        assert r.status_code == 200, r.text
        again = c.post("/v1/load_lora_adapter",
                       json={"lora_name": "beta", "lora_path": str(spare_adapter)})  # fmt: skip
        assert again.status_code == 400
        assert "beta" in [m["id"] for m in c.get("/v1/models").json()["data"]]
        assert _complete(server, "beta") != _complete(server, MODEL_NAME)
        r = c.post("/v1/unload_lora_adapter", json={"lora_name": "beta"})
        assert r.status_code == 200
        assert "beta" not in [m["id"] for m in c.get("/v1/models").json()["data"]]
        missing = c.post("/v1/unload_lora_adapter", json={"lora_name": "beta"})
        assert missing.status_code == 404
        bad = c.post("/v1/load_lora_adapter", json={"lora_name": "z", "lora_path": "/nowhere"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "lora_path"
    assert _complete(server, "alpha") != _complete(server, MODEL_NAME)


def test_merged_mode_applies_all_adapters_with_strengths(
    tiny_model: Path, adapters_dir: Path, spare_adapter: Path, tmp_path: Path
) -> None:
    both = tmp_path / "adapters"
    both.mkdir()
    (both / "alpha").symlink_to(adapters_dir / "alpha")
    (both / "beta").symlink_to(spare_adapter)
    settings = ServerSettings(model=tiny_model, served_model_name=MODEL_NAME, adapters_dir=both,
                              adapter_mode="merged")  # fmt: skip
    with serve(settings, environ={"alpha": "0.5", "beta": "1.5"}) as running:
        with running.client() as c:
            ids = [m["id"] for m in c.get("/v1/models").json()["data"]]
        assert ids == [MODEL_NAME]
        merged = _complete(running, MODEL_NAME)
    expected = _reference(tiny_model, [adapters_dir / "alpha", spare_adapter], [0.5, 1.5])
    assert merged == expected
