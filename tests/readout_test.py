import numpy as np

from glom_tf.readout import CellLoss, ReadoutMetric, agreement, class_probabilities, readout
from tests.test_case import GlomTestCase


def scores():
    # 2 images on a 2x2 grid, 3 classes: image 0 votes 0,0,0,2; image 1 votes 1,1,2,2.
    s = np.zeros((2, 2, 2, 3), "float32")
    for b, votes in enumerate([[0, 0, 0, 2], [1, 1, 2, 2]]):
        for i, v in enumerate(votes):
            s[b, i // 2, i % 2, v] = 1.0 + 0.1 * i
    return s


class ReadoutTest(GlomTestCase):
    def test_vote_and_mean(self):
        s = scores()
        vote = np.asarray(class_probabilities(s, "vote"))
        self.assertAllClose(vote, [[0.75, 0, 0.25], [0, 0.5, 0.5]])
        mean = np.asarray(class_probabilities(s, "mean"))
        expected = s.mean(axis=(1, 2))
        expected = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
        self.assertAllClose(mean, expected, atol=1e-6)
        self.assertAllClose(agreement(s, np.array([0, 2])), [0.75, 0.5])
        # Over masked cells only: image 0 keeps cells 2 (votes 0) and 3 (votes 2): 1 of 2 agree
        # with class 0; image 1 keeps no cell: 0.
        mask = np.array([[[False, False], [True, True]], [[False, False], [False, False]]])
        self.assertAllClose(agreement(s, np.array([0, 2]), mask), [0.5, 0.0])

    def test_cell_loss(self):
        s = scores()
        labels = np.array([0, 1])
        onehot = np.eye(3)[labels][:, None, None, :]
        mse = float(CellLoss("mse")(labels, s))
        self.assertAllClose(mse, np.mean((s - onehot) ** 2), atol=1e-6)
        ce = float(CellLoss("crossentropy")(labels, s))
        logp = s - np.log(np.exp(s).sum(-1, keepdims=True))
        self.assertAllClose(
            ce,
            -np.mean(np.take_along_axis(logp, labels[:, None, None, None] * np.ones((2, 2, 2, 1), int), -1)),
            atol=1e-5,
        )
        # The mean readout's cross-entropy: -log softmax(mean of the cells' scores)[label]. By
        # convexity it is at most the per-cell mean; lower here, where the cells disagree.
        pooled = s.mean(axis=(1, 2))  # (2, 3)
        logq = pooled - np.log(np.exp(pooled).sum(-1, keepdims=True))
        mean_ce = float(CellLoss("mean_crossentropy")(labels, s))
        self.assertAllClose(mean_ce, -np.mean(logq[[0, 1], labels]), atol=1e-5)
        self.assertLess(mean_ce, ce - 1e-3)
        with self.assertRaisesRegex(ValueError, "mean_crossentropy"):
            CellLoss("mean_ce")  # a misspelt kind is refused, not read as per-cell cross-entropy

    def test_metrics(self):
        s, labels = scores(), np.array([0, 1])
        vote = ReadoutMetric("vote_accuracy")
        vote.update_state(labels, s)
        self.assertAllClose(float(vote.result()), 1.0)  # image 1 ties 1 and 2: the lower class wins
        wrong = ReadoutMetric("vote_accuracy")
        wrong.update_state(np.array([0, 2]), s)
        self.assertAllClose(float(wrong.result()), 0.5)
        agree = ReadoutMetric("agreement")
        agree.update_state(labels, s)
        self.assertAllClose(float(agree.result()), (0.75 + 0.5) / 2)
        restored = ReadoutMetric.from_config(vote.get_config())
        self.assertEqual(restored.kind, "vote_accuracy")

    def test_readout_returns_probabilities_classes_and_agreement(self):
        s = scores()
        votes = s.argmax(-1)  # (B, H, W)
        by_vote = np.stack([(votes == c).mean((1, 2)) for c in range(s.shape[-1])], -1)  # (B, C)
        mean = s.mean((1, 2))
        by_mean = np.exp(mean - mean.max(-1, keepdims=True))
        by_mean /= by_mean.sum(-1, keepdims=True)  # softmax of the cells' mean score
        for kind, expected in (("vote", by_vote), ("mean", by_mean)):
            probabilities, classes, agree = readout(s, kind)
            self.assertAllClose(probabilities, expected)
            self.assertAllEqual(classes, expected.argmax(-1))
            self.assertEqual(np.asarray(classes).dtype, np.int32)
            self.assertEqual(np.asarray(probabilities).dtype, np.float32)
            self.assertAllClose(agree, (votes == expected.argmax(-1)[:, None, None]).mean((1, 2)))
        # vote: image 0 -> class 0 (3 of 4 cells), image 1 ties 1 and 2 -> 1 (lowest index).
        self.assertAllEqual(readout(s, "vote")[1], [0, 1])
        self.assertAllClose(readout(s, "vote")[2], [0.75, 0.5])
        with self.assertRaisesRegex(ValueError, "readout must be"):
            readout(s, "max")

    def test_vote_and_mean_readouts_can_disagree(self):
        # One image: three cells vote class 0 weakly, one cell votes class 1 strongly.
        s = np.zeros((1, 2, 2, 3), "float32")
        s[0, 0, 0, 0] = s[0, 0, 1, 0] = s[0, 1, 0, 0] = 1.0
        s[0, 1, 1, 1] = 10.0  # mean scores: class 0 0.75, class 1 2.5
        self.assertAllEqual(readout(s, "vote")[1], [0])
        self.assertAllEqual(readout(s, "mean")[1], [1])
        self.assertAllClose(readout(s, "vote")[2], [0.75])
        self.assertAllClose(readout(s, "mean")[2], [0.25])  # one cell votes for the mean's class
        labels = np.array([1])
        for kind, readout_kind, expected in (
            ("vote_accuracy", "vote", 0.0),
            ("mean_accuracy", "vote", 1.0),
            ("agreement", "vote", 0.75),
            ("agreement", "mean", 0.25),
        ):
            metric = ReadoutMetric(kind, readout=readout_kind)
            metric.update_state(labels, s)
            self.assertAllClose(float(metric.result()), expected, msg=(kind, readout_kind))
        restored = ReadoutMetric.from_config(ReadoutMetric("agreement", readout="mean").get_config())
        self.assertEqual((restored.kind, restored.readout), ("agreement", "mean"))
