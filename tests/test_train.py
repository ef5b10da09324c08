"""Tests for lessons.train: device, seeding, History, fit, autocast, safetensors checkpoints."""

import json
import random
import struct

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lessons import train

# --------------------------------------------------------------------------------------------
# pick_device, seed_everything
# --------------------------------------------------------------------------------------------


class TestPickDevice:
    def test_cpu_and_auto(self, monkeypatch):
        assert train.pick_device("cpu") == torch.device("cpu")
        assert train.pick_device(" CPU ") == torch.device("cpu")
        assert train.pick_device(torch.device("cpu")) == torch.device("cpu")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert train.pick_device() == torch.device("cpu")
        assert train.pick_device("auto") == torch.device("cpu")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert train.pick_device() == torch.device("cuda")

    def test_errors(self, monkeypatch):
        for bad in ("banana", "mps", "meta", 3.5):
            with pytest.raises(ValueError, match="prefer: expected None, 'auto', 'cpu', 'cuda' or 'cuda:N'"):
                train.pick_device(bad)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        with pytest.raises(ValueError, match="is_available"):
            train.pick_device("cuda")


def test_seed_everything_reproducible():
    def draw():
        gen = train.seed_everything(123)
        return (
            torch.randn(5),
            torch.randn(5, generator=gen),
            random.random(),
            float(np.random.rand()),
        )

    a, b = draw(), draw()
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    assert a[2:] == b[2:]
    assert isinstance(train.seed_everything(0), torch.Generator)
    assert train.seed_everything(7).initial_seed() == 7
    train.seed_everything(124)
    assert not torch.equal(torch.randn(5), a[0])
    for bad in (-1, 2**32, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed: expected an integer"):
            train.seed_everything(bad)


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------


class TestHistory:
    def make(self):
        h = train.History()
        h.log(0, loss=torch.tensor(4.0), lr=1e-3)
        h.log(1, loss=np.float32(2.0))
        h.log(2, loss=1.0, acc=torch.tensor([0.5]))
        return h

    def test_log_and_read(self):
        h = self.make()
        assert h["loss"] == [4.0, 2.0, 1.0] and all(type(v) is float for v in h["loss"])
        assert h.steps("loss") == [0, 1, 2] and h.steps("lr") == [0] and h.steps("acc") == [2]
        assert h.last("loss") == 1.0 and h.last("acc") == 0.5
        assert h.keys() == ["loss", "lr", "acc"] and "lr" in h and "nope" not in h and len(h) == 3
        assert h.next_step() == 3 and train.History().next_step() == 0
        assert "loss=1@2" in repr(h)
        h["loss"].append(99.0)  # a copy: the history is unchanged
        assert h["loss"] == [4.0, 2.0, 1.0]
        with pytest.raises(KeyError, match="'nope': no such metric"):
            h["nope"]

    def test_non_scalar_rejected_atomically(self):
        h = self.make()
        with pytest.raises(ValueError, match=r"bad: expected a number or a 0-d tensor, received a tensor of shape \(2,\)"):
            h.log(3, loss=0.5, bad=torch.ones(2))
        with pytest.raises(ValueError, match="bad: expected a number"):
            h.log(3, bad="text")
        assert h["loss"] == [4.0, 2.0, 1.0]  # nothing of the failed calls was logged

    def test_dict_round_trip_is_json(self):
        h = self.make()
        d = json.loads(json.dumps(h.to_dict()))
        assert d["loss"] == {"steps": [0, 1, 2], "values": [4.0, 2.0, 1.0]}
        h2 = train.History.from_dict(d)
        assert h2.to_dict() == h.to_dict()
        with pytest.raises(ValueError, match="loss: expected"):
            train.History.from_dict({"loss": {"steps": [0, 1], "values": [1.0]}})

    def test_plot(self):
        h = train.History()
        for i in range(10):
            h.log(i, loss=float(10 - i), val=float(i % 3 + 1))
        ax = h.plot()
        assert [line.get_label() for line in ax.get_lines()] == ["loss", "val"]
        np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), h["loss"])
        assert ax.get_yscale() == "linear"
        plt.close(ax.figure)
        fig, ax = plt.subplots()
        assert h.plot("loss", ax=ax, smooth=0.5, logy=True) is ax
        assert ax.get_yscale() == "log"
        raw, smooth = ax.get_lines()  # the faint raw curve, then the smoothed one
        # debiased EMA with factor 0.5 of 10, 9: m1 = 5 / 0.5 = 10; m2 = (2.5 + 4.5) / 0.75 = 9.333
        assert smooth.get_ydata()[:2] == pytest.approx([10.0, 28 / 3])
        assert raw.get_alpha() == pytest.approx(0.3)
        plt.close(fig)
        with pytest.raises(ValueError, match=r"keys: expected names among \['loss', 'val'\], received unknown \['acc'\]"):
            h.plot(["acc"])
        with pytest.raises(ValueError, match="smooth"):
            h.plot(smooth=1.0)


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------


def make_regression(seed=0):
    gen = train.seed_everything(seed)
    x = torch.randn(64, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(i):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    return model, step


class TestFit:
    def test_regression_loss_decreases(self):
        _, step = make_regression()
        h = train.fit(step, 50, progress=False)
        assert h.steps("loss") == list(range(50))
        assert h["loss"][-1] < 0.01 * h["loss"][0]
        assert all(b <= a for a, b in zip(h["loss"], h["loss"][1:]))  # convex, small lr: monotone

    def test_log_every_eval_every_and_resume(self):
        _, step = make_regression()
        calls = []

        def evaluate(i):
            calls.append(i)
            return {"val": torch.tensor(float(i))}

        h = train.fit(step, 25, log_every=10, eval_fn=evaluate, eval_every=10, progress=False)
        assert h.steps("loss") == [0, 10, 20, 24]  # the last step is always logged
        assert calls == [9, 19, 24] and h["val"] == [9.0, 19.0, 24.0]
        # passing the history continues the step count
        seen = []
        train.fit(lambda i: seen.append(i) or {"loss": 0.0}, 3, history=h, progress=False)
        assert seen == [25, 26, 27] and h.steps("loss")[-3:] == [25, 26, 27]
        # eval_fn without eval_every runs once, after the last step
        calls.clear()
        train.fit(lambda i: None, 5, eval_fn=evaluate, progress=False)
        assert calls == [4]

    def test_progress_bar_postfix_is_throttled(self, monkeypatch):
        from tqdm.auto import tqdm

        postfixes = []
        original = tqdm.set_postfix
        monkeypatch.setattr(tqdm, "set_postfix", lambda self, *a, **k: postfixes.append(a) or original(self, *a, **k))
        h = train.fit(lambda i: {"loss": 1.0 / (i + 1)}, 300, desc="fast", postfix_interval=60.0)
        assert len(h["loss"]) == 300
        assert 1 <= len(postfixes) <= 3  # first and last, not 300
        assert postfixes[-1][0] == {"loss": f"{1 / 300:.4g}"}

    def test_errors(self):
        with pytest.raises(ValueError, match="steps: expected a non-negative integer"):
            train.fit(lambda i: None, -1, progress=False)
        with pytest.raises(ValueError, match="log_every"):
            train.fit(lambda i: None, 3, log_every=0, progress=False)
        with pytest.raises(ValueError, match="eval_every: given, but eval_fn is None"):
            train.fit(lambda i: None, 3, eval_every=2, progress=False)
        with pytest.raises(ValueError, match="step_fn: expected a dict of metrics"):
            train.fit(lambda i: [1.0], 3, progress=False)


# --------------------------------------------------------------------------------------------
# autocast
# --------------------------------------------------------------------------------------------


class TestAutocast:
    def test_cpu_is_a_no_op(self):
        a = torch.randn(4, 4)
        with train.autocast("cpu"):
            assert (a @ a).dtype == torch.float32
            assert not torch.is_autocast_enabled("cpu")
        assert train.amp_dtype("cpu") is None
        assert not train.grad_scaler("cpu").is_enabled()

    def test_cuda_dtype_choice(self, monkeypatch):
        monkeypatch.setattr(train, "_bf16_supported", lambda: True)
        assert train.amp_dtype("cuda") == torch.bfloat16
        monkeypatch.setattr(train, "_bf16_supported", lambda: False)
        assert train.amp_dtype(torch.device("cuda:0")) == torch.float16
        with pytest.raises(ValueError, match="device"):
            train.amp_dtype("banana")

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_cuda_autocast(self):
        a = torch.randn(8, 8, device="cuda")
        with train.autocast("cuda"):
            assert (a @ a).dtype == train.amp_dtype("cuda")
        with train.autocast("cuda", enabled=False):
            assert (a @ a).dtype == torch.float32
        assert train.grad_scaler("cuda").is_enabled() == (train.amp_dtype("cuda") == torch.float16)


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------


class TiedModel(torch.nn.Module):
    """An embedding shared with the output layer (weight tying), plus a non-float buffer."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(7, 4)
        self.body = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 7, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("count", torch.tensor([3, 1], dtype=torch.int64))


class TestCheckpoint:
    def test_round_trip_tied_weights_and_metadata(self, tmp_path):
        torch.manual_seed(0)
        model = TiedModel()
        meta = {"step": 12, "config": {"lr": 0.001, "sizes": [32, 64]}, "history": {"loss": {"steps": [0], "values": [1.5]}}}
        path = train.save_checkpoint(tmp_path / "sub" / "m.safetensors", model, meta)
        assert path.exists()
        # the tied tensor is stored once
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            assert sorted(f.keys()) == ["body.bias", "body.weight", "count", "embed.weight"]
        fresh = TiedModel()
        state, meta2 = train.load_checkpoint(path, fresh)
        assert meta2 == meta
        assert set(state) == set(model.state_dict())
        for k, v in model.state_dict().items():
            assert torch.equal(state[k], v) and state[k].dtype == v.dtype
            assert torch.equal(fresh.state_dict()[k], v)
        assert fresh.head.weight is fresh.embed.weight  # still tied after loading
        # a model with other names fails loudly (strict)
        with pytest.raises(RuntimeError, match="Missing key"):
            train.load_checkpoint(path, torch.nn.Linear(4, 4))

    def test_file_is_safetensors_not_pickle(self, tmp_path):
        path = train.save_checkpoint(tmp_path / "m.safetensors", {"w": torch.arange(6.0).view(2, 3)})
        raw = path.read_bytes()
        assert not raw.startswith(b"\x80") and not raw.startswith(b"PK")  # neither pickle nor torch's zip
        (n,) = struct.unpack("<Q", raw[:8])  # safetensors: u64 little-endian header length, then JSON
        header = json.loads(raw[8 : 8 + n])
        assert header["w"]["dtype"] == "F32" and header["w"]["shape"] == [2, 3]
        assert len(raw) == 8 + n + 6 * 4
        state, meta = train.load_checkpoint(path)
        assert meta is None and torch.equal(state["w"], torch.arange(6.0).view(2, 3))

    def test_views_and_non_contiguous(self, tmp_path):
        base = torch.arange(12.0)
        sd = {"a": base, "b": base[2:5], "c": base.view(3, 4).t(), "d": torch.zeros(0, 3), "e": base}
        state, _ = train.load_checkpoint(train.save_checkpoint(tmp_path / "v.safetensors", sd))
        for k, v in sd.items():
            assert torch.equal(state[k], v)
        assert state["e"] is state["a"]

    def test_device_argument(self, tmp_path, device):
        path = train.save_checkpoint(tmp_path / "d.safetensors", {"w": torch.ones(2, device=device)})
        state, _ = train.load_checkpoint(path, device=device)
        assert state["w"].device.type == device.type

    def test_errors(self, tmp_path):
        with pytest.raises(ValueError, match="metadata: expected a JSON-serialisable dict"):
            train.save_checkpoint(tmp_path / "x.safetensors", {"w": torch.ones(1)}, {"t": torch.ones(1)})
        with pytest.raises(ValueError, match=r"model_or_state_dict\['opt'\]: expected a torch.Tensor, received dict"):
            train.save_checkpoint(tmp_path / "x.safetensors", {"w": torch.ones(1), "opt": {}})
        with pytest.raises(ValueError, match="model_or_state_dict: expected a torch.nn.Module or a dict"):
            train.save_checkpoint(tmp_path / "x.safetensors", [torch.ones(1)])
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"\x80\x04 definitely not safetensors")
        with pytest.raises(ValueError, match="path: expected a safetensors file"):
            train.load_checkpoint(bad)
        with pytest.raises(FileNotFoundError):
            train.load_checkpoint(tmp_path / "missing.safetensors")


def test_count_parameters():
    assert train.count_parameters(torch.nn.Linear(3, 4)) == 16  # 3*4 weights + 4 biases
    # tied weights count once: embed 7*4 + body 4*4 + 4 (head shares embed)
    assert train.count_parameters(TiedModel()) == 28 + 16 + 4
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    m[0].requires_grad_(False)
    assert train.count_parameters(m) == 9 and train.count_parameters(m, trainable_only=True) == 3
    with pytest.raises(ValueError, match="model: expected a torch.nn.Module"):
        train.count_parameters({"w": torch.ones(2)})
