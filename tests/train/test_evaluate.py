"""evaluate and predict: against hand computations, every kind of data, the model's mode, and errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from blockzoo.data import Split
from blockzoo.errors import UnknownNameError
from blockzoo.train import Evaluation, evaluate, predict


def identity_model() -> nn.Linear:
    """Logits equal to the inputs."""
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    return model


X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
Y = torch.tensor([0, 1, 1])


class Pairs(Dataset[tuple[Tensor, Tensor]]):
    """A plain Dataset (not a TensorDataset), so data goes through a DataLoader."""

    def __init__(self, x: Tensor, y: Tensor, classes: list[str] | None = None) -> None:
        self.x, self.y = x, y
        if classes is not None:
            self.classes = classes

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.y[i]


def test_evaluate_against_a_hand_computation() -> None:
    result = evaluate(identity_model(), (X, Y), batch_size=2, confusion_matrix=True)
    # softmax over logits (1, 0) or (0, 1): -log p = log(1 + e) - logit of the true class
    expected_loss = (3 * math.log(1 + math.e) - (1 + 1 + 0)) / 3
    assert result.loss == pytest.approx(expected_loss)
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.samples == 3
    assert result.metrics == {"loss": pytest.approx(expected_loss), "accuracy": pytest.approx(2 / 3)}
    assert result.confusion_matrix is not None
    assert result.confusion_matrix.tolist() == [[1, 0], [1, 1]]  # rows: true class; columns: predicted


def test_confusion_matrix_against_a_loop() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 5, generator=g), torch.randint(0, 4, (50,), generator=g)
    model = nn.Linear(5, 4)
    result = evaluate(model, (x, y), batch_size=7, confusion_matrix=True)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    expected = torch.zeros(4, 4, dtype=torch.int64)
    for true, pred in zip(y.tolist(), predicted.tolist(), strict=True):
        expected[true, pred] += 1
    assert result.confusion_matrix is not None
    assert torch.equal(result.confusion_matrix, expected)
    assert result.accuracy == pytest.approx((predicted == y).double().mean().item())


def test_no_confusion_matrix_unless_asked_and_extra_metrics() -> None:
    result = evaluate(identity_model(), (X, Y), metrics=["accuracy", "top5_accuracy"])
    assert result.confusion_matrix is None
    assert result.metrics["top5_accuracy"] == 1.0
    no_accuracy = evaluate(identity_model(), (X, Y), metrics=[])
    assert math.isnan(no_accuracy.accuracy)


def test_nll_loss_on_log_probabilities() -> None:
    model = nn.Sequential(identity_model(), nn.LogSoftmax(dim=1))
    assert evaluate(model, (X, Y), loss="nll").loss == pytest.approx(evaluate(identity_model(), (X, Y)).loss)


def test_every_kind_of_data_gives_the_same_evaluation() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(23, 2, generator=g), torch.randint(0, 2, (23,), generator=g)
    model = nn.Linear(2, 2)
    kinds: list[Any] = [
        (x, y),
        [x, y],
        TensorDataset(x, y),
        Pairs(x, y),
        DataLoader(TensorDataset(x, y), batch_size=5),
        Split(x[:0], y[:0], x, y),  # its validation part
    ]
    results = [evaluate(model, data, batch_size=4, confusion_matrix=True) for data in kinds]
    for result in results[1:]:
        assert result.samples == 23
        assert result.loss == pytest.approx(results[0].loss)
        assert result.accuracy == results[0].accuracy
        assert result.confusion_matrix is not None
        assert results[0].confusion_matrix is not None
        assert torch.equal(result.confusion_matrix, results[0].confusion_matrix)


@pytest.mark.parametrize("training", [True, False])
def test_mode_is_restored(training: bool) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.train(training)
    modes: list[bool] = []
    model.register_forward_hook(lambda m, args, out: modes.append(m.training))
    evaluate(model, (X, Y))
    predict(model, X)
    assert modes == [False, False]  # it ran in eval mode
    assert model.training is training
    assert model[1].training is training


def test_mode_is_restored_after_an_error() -> None:
    model = nn.Linear(2, 2)

    def failing(output: Tensor, target: Tensor) -> Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        evaluate(model, (X, Y), loss=failing)
    assert model.training


def test_no_gradients_are_recorded() -> None:
    model = nn.Linear(2, 2)
    assert not predict(model, X).requires_grad
    evaluate(model, (X, Y))
    assert all(p.grad is None for p in model.parameters())


def test_class_names_from_the_data_set_are_printed() -> None:
    result = evaluate(identity_model(), Pairs(X, Y, classes=["cat", "dog"]), confusion_matrix=True)
    assert result.classes == ["cat", "dog"]
    text = str(result)
    assert text.splitlines()[0] == f"loss {result.loss:.4f} | accuracy 66.67% | 3 samples"
    assert "confusion matrix (rows: true class, columns: predicted class)" in text
    assert text.splitlines()[-2:] == ["cat   1   0", "dog   1   1"]


def test_evaluation_is_frozen() -> None:
    result = evaluate(identity_model(), (X, Y))
    assert isinstance(result, Evaluation)
    with pytest.raises(AttributeError):
        result.loss = 0.0  # type: ignore[misc]


# ------------------------------------------------------------------- predict


def test_predict_keeps_order_and_shape_for_every_kind_of_data() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(11, 4, generator=g), torch.randint(0, 3, (11,), generator=g)
    model = nn.Linear(4, 3)
    with torch.no_grad():
        expected = model(x)
    kinds: list[Any] = [
        x,
        (x, y),
        (x,),
        TensorDataset(x),
        TensorDataset(x, y),
        Pairs(x, y),
        DataLoader(TensorDataset(x, y), batch_size=3),
        DataLoader(TensorDataset(x), batch_size=4),
        Split(x[:0], y[:0], x, y),
    ]
    for data in kinds:
        out = predict(model, data, batch_size=3)
        assert out.shape == (11, 3)
        assert out.device.type == "cpu"
        torch.testing.assert_close(out, expected)


def test_predict_and_evaluate_unpack_several_inputs() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, u: Tensor, v: Tensor) -> Tensor:
            return self.a(u) + self.b(v)

    def pairs(batch: list[tuple[Tensor, Tensor, Tensor]]) -> tuple[tuple[Tensor, Tensor], Tensor]:
        u, v, y = (torch.stack(t) for t in zip(*batch, strict=True))
        return (u, v), y

    model = Two()
    loader = DataLoader(TensorDataset(X, X.flip(1), Y), batch_size=2, collate_fn=pairs)
    with torch.no_grad():
        expected = model(X, X.flip(1))
    torch.testing.assert_close(predict(model, loader), expected)
    assert evaluate(model, loader).samples == 3


def test_predict_on_another_device_argument() -> None:
    model = nn.Linear(2, 2)
    assert predict(model, X, device="cpu").shape == (3, 2)


# -------------------------------------------------------------------- errors


def test_errors() -> None:
    model = identity_model()
    with pytest.raises(ValueError, match=r"batch_size must be .*Received: batch_size=0"):
        evaluate(model, (X, Y), batch_size=0)
    with pytest.raises(ValueError, match=r"batch_size must be .*Received: batch_size=-1"):
        predict(model, X, batch_size=-1)
    with pytest.raises(TypeError, match=r"data must be an \(inputs, targets\) pair.*Received: data=str"):
        evaluate(model, "digits")
    with pytest.raises(
        ValueError, match=r"data: the tensors must have one length.*Received: data with lengths \[3, 2\]"
    ):
        evaluate(model, (X, Y[:2]))
    with pytest.raises(UnknownNameError, match=r"Unknown loss 'mse'"):
        evaluate(model, (X, Y), loss="mse")
    with pytest.raises(
        ValueError,
        match=r"device must be 'auto' or a torch device such as 'cpu', 'cuda', 'cuda:1' or 'mps'. Received: device='gpu0'",
    ):
        evaluate(model, (X, Y), device="gpu0")


def test_evaluate_needs_targets() -> None:
    model = identity_model()
    with pytest.raises(
        ValueError,
        match=r"evaluate: data must give \(inputs, targets\) pairs \(predict takes inputs alone\). Received: data=Tensor giving batches of 1 element",
    ):
        evaluate(model, X)
    with pytest.raises(ValueError, match=r"Received: data=TensorDataset giving batches of 1 element"):
        evaluate(model, TensorDataset(X))


def test_predict_on_no_samples() -> None:
    with pytest.raises(ValueError, match=r"predict: data has no samples. Received: an empty data set"):
        predict(nn.Linear(2, 2), Pairs(X[:0], Y[:0]))
