import numpy as np
import tensorflow as tf

from glom_tf import objectives
from tests.test_case import GlomTestCase


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def part_reference(vectors, mask, scale, temperature):
    """NumPy, cell by cell: for every object cell i with a 4-neighbouring object cell,
    -log( sum_{j in P(i)} exp(s_ij / T) / sum_{j in P(i) or N(i)} exp(s_ij / T) ), with s the
    cosine, P(i) the 4-neighbouring object cells (no wrap-around) and N(i) the object cells at
    Chebyshev distance >= scale; the mean over such anchors in all images."""
    b, n, _ = vectors.shape
    grid = int(round(np.sqrt(n)))
    u = unit(vectors)
    per_anchor = []
    for image in range(b):
        for i in range(n):
            if not mask[image, i]:
                continue
            yi, xi = divmod(i, grid)
            pos, both = [], []
            for j in range(n):
                if not mask[image, j]:
                    continue
                yj, xj = divmod(j, grid)
                s = u[image, i] @ u[image, j] / temperature
                is_pos = abs(yi - yj) + abs(xi - xj) == 1
                if is_pos:
                    pos.append(s)
                if is_pos or max(abs(yi - yj), abs(xi - xj)) >= scale:
                    both.append(s)
            if pos:
                per_anchor.append(logsumexp(np.array(both)) - logsumexp(np.array(pos)))
    return np.mean(per_anchor)


def object_reference(vectors, mask, temperature):
    """NumPy: each object cell against the normalised mean of its own image's object cells'
    unit vectors (positive) and the other images' means (negatives); mean over object cells."""
    u = unit(vectors)
    means = unit(np.stack([u[b][mask[b] > 0].sum(0) for b in range(len(u))]))  # (B, D)
    losses = []
    for b in range(len(u)):
        for i in np.flatnonzero(mask[b]):
            logits = means @ u[b, i] / temperature  # (B,)
            losses.append(logsumexp(logits) - logits[b])
    return np.mean(losses)


def object_neighbour_pairs(mask):
    """The ordered pairs (image, i, j) of 4-neighbouring object cells (no wrap-around) of a mask
    (B, n) over a square grid of n cells."""
    b, n = mask.shape
    grid = int(round(np.sqrt(n)))
    for image in range(b):
        for i in range(n):
            for j in range(n):
                (yi, xi), (yj, xj) = divmod(i, grid), divmod(j, grid)
                if mask[image, i] and mask[image, j] and abs(yi - yj) + abs(xi - xj) == 1:
                    yield image, i, j


def sharpness_reference(vectors, mask, high, low=0.5):
    """NumPy, pair by pair: the mean over ordered pairs (i, j) of 4-neighbouring object cells
    (no wrap-around) of the penalty 4 (c - low)(high - c) / (high - low)^2 where the cosine c
    lies in (low, high), else 0."""
    u = unit(vectors)
    penalties = []
    for image, i, j in object_neighbour_pairs(mask):
        c = u[image, i] @ u[image, j]
        inside = low < c < high
        penalties.append(4 * (c - low) * (high - c) / (high - low) ** 2 if inside else 0.0)
    return np.mean(penalties)


def nesting_reference(lower, upper, mask):
    """NumPy, pair by pair: the mean over ordered pairs (i, j) of 4-neighbouring object cells of
    max(0, cos_lower(i, j) - cos_upper(i, j))."""
    lo, up = unit(lower), unit(upper)
    pairs = object_neighbour_pairs(mask)
    return np.mean([max(0.0, lo[b, i] @ lo[b, j] - up[b, i] @ up[b, j]) for b, i, j in pairs])


def random_inputs(seed, b=3, grid=4, d=5, p=0.7):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(b, grid * grid, d)).astype("float32")
    mask = (rng.random((b, grid * grid)) < p).astype("float32")
    mask[:, 5] = mask[:, 6] = 1.0  # every image has an object (with one neighbouring pair)
    return vectors, mask


def random_state(seed, b, levels, d):
    """A random state (B, 4, 4, L, D), its object mask (B, 4, 4) with at least one neighbouring
    pair, and the mask flattened to (B, 16) float32."""
    rng = np.random.default_rng(seed)
    state = rng.normal(size=(b, 4, 4, levels, d)).astype("float32")
    mask = rng.random((b, 4, 4)) < 0.7
    mask[:, 1, 1] = mask[:, 1, 2] = True
    return state, mask, mask.reshape(b, 16).astype("float32")


def islands_state(b=2, grid=4, d=6):
    """(B, grid, grid, 3, D): level 1 two islands per image (left and right halves, orthogonal
    vectors), level 2 one vector per image (orthogonal across images)."""
    eye = np.eye(d, dtype="float32")
    state = np.zeros((b, grid, grid, 3, d), "float32")
    for image in range(b):
        state[image, :, : grid // 2, 1] = eye[2 * image]
        state[image, :, grid // 2 :, 1] = eye[2 * image + 1]
        state[image, :, :, 2] = eye[image]
    return state


class ObjectivesTest(GlomTestCase):
    def test_grid_relations(self):
        positives, negatives = objectives.grid_relations(3, 2)
        self.assertEqual(positives.shape, (9, 9))
        # Cell 4 is the centre of a 3x3 grid: 4-neighbours 1, 3, 5, 7; none at distance >= 2.
        self.assertAllEqual(np.flatnonzero(positives[4]), [1, 3, 5, 7])
        self.assertAllEqual(np.flatnonzero(negatives[4]), [])
        # Cell 0 (a corner): neighbours 1 and 3 (no wrap-around to 2 or 6).
        self.assertAllEqual(np.flatnonzero(positives[0]), [1, 3])
        self.assertAllEqual(np.flatnonzero(negatives[0]), [2, 5, 6, 7, 8])
        self.assertAllEqual(positives, positives.T)
        _, everything = objectives.grid_relations(3, 1)
        self.assertAllEqual(everything, 1.0 - np.eye(9))

    def test_part_island_loss_matches_the_definition(self):
        for seed, scale, temperature in ((0, 2, 0.1), (1, 1, 0.5), (2, 3, 0.2)):
            vectors, mask = random_inputs(seed)
            got = float(objectives.part_island_loss(vectors, mask, scale, temperature))
            self.assertAllClose(got, part_reference(vectors, mask, scale, temperature), rtol=1e-4)

    def test_object_island_loss_matches_the_definition(self):
        for seed, temperature in ((3, 0.1), (4, 0.5)):
            vectors, mask = random_inputs(seed)
            got = float(objectives.object_island_loss(vectors, mask, temperature))
            self.assertAllClose(got, object_reference(vectors, mask, temperature), rtol=1e-4)

    def test_island_loss_is_the_mean_over_levels(self):
        state, mask, flat = random_state(5, b=3, levels=3, d=5)
        expected = (
            part_reference(state[:, :, :, 1].reshape(3, 16, 5), flat, 2, 0.1)
            + object_reference(state[:, :, :, 2].reshape(3, 16, 5), flat, 0.1)
        ) / 2
        got = float(objectives.island_loss(state, mask, (2, 0), 0.1))
        self.assertAllClose(got, expected, rtol=1e-4)

    def test_islands_state_scores_lower_than_a_random_one(self):
        designed = islands_state()
        mask = np.ones((2, 4, 4), bool)
        random = np.random.default_rng(6).normal(size=designed.shape).astype("float32")
        low = float(objectives.island_loss(designed, mask, (2, 0), 0.1))
        high = float(objectives.island_loss(random, mask, (2, 0), 0.1))
        self.assertLess(low, high - 1.0)
        # The object level alone: one distinct vector per image is (near) optimal.
        self.assertLess(float(objectives.island_loss(designed, mask, (0, 0), 0.1)), 1e-3)

    def test_island_loss_gradients(self):
        state = tf.constant(np.random.default_rng(7).normal(size=(2, 4, 4, 3, 5)), tf.float32)
        mask = np.ones((2, 4, 4), bool)
        with tf.GradientTape() as tape:
            tape.watch(state)
            loss = objectives.island_loss(state, mask, (2, 0), 0.1)
        grad = tape.gradient(loss, state).numpy()
        self.assertTrue(np.all(np.isfinite(grad)))
        self.assertAllEqual(grad[:, :, :, 0], np.zeros_like(grad[:, :, :, 0]))  # level 0: no term
        self.assertGreater(np.abs(grad[:, :, :, 1:]).max(), 0.0)

    def test_sharpness_loss_matches_the_definition(self):
        for seed, high in ((10, 0.95), (11, 0.8)):
            vectors, mask = random_inputs(seed, d=3)  # few dimensions: many cosines inside (0.5, high)
            got = float(objectives.sharpness_loss(vectors, mask, high))
            expected = sharpness_reference(vectors, mask, high)
            self.assertGreater(expected, 0.0)
            self.assertAllClose(got, expected, rtol=1e-4)

    def test_sharpness_is_zero_on_islands_and_one_midway(self):
        designed = islands_state()[:, :, :, 1].reshape(2, 16, 6)  # two islands, orthogonal
        mask = np.ones((2, 16), "float32")
        self.assertAllClose(float(objectives.sharpness_loss(designed, mask, 0.95)), 0.0)
        # Every neighbouring pair at cosine 0.725 (midway between 0.5 and 0.95): penalty 1.
        # Cell (y, x) gets the unit vector at angle a (y + x): neighbours differ by a.
        a = np.arccos(0.725)
        y, x = np.divmod(np.arange(16), 4)
        vectors = np.stack([np.cos(a * (y + x)), np.sin(a * (y + x))], -1)[None].astype("float32")
        self.assertAllClose(float(objectives.sharpness_loss(vectors, mask[:1], 0.95)), 1.0, rtol=1e-5)

    def test_island_loss_adds_the_sharpness_at_part_levels(self):
        state, mask, flat = random_state(12, b=3, levels=3, d=3)
        level1 = state[:, :, :, 1].reshape(3, 16, 3)
        expected = (
            part_reference(level1, flat, 2, 0.1)
            + 0.5 * sharpness_reference(level1, flat, 0.9)
            + object_reference(state[:, :, :, 2].reshape(3, 16, 3), flat, 0.1)  # object level: none
        ) / 2
        got = float(objectives.island_loss(state, mask, (2, 0), 0.1, sharpness=0.5, high=0.9))
        self.assertAllClose(got, expected, rtol=1e-4)

    def test_nesting_loss_matches_the_definition(self):
        lower, mask = random_inputs(13, d=3)
        upper, _ = random_inputs(14, d=3)
        expected = nesting_reference(lower, upper, mask)
        self.assertGreater(expected, 0.0)
        self.assertAllClose(float(objectives.nesting_loss(lower, upper, mask)), expected, rtol=1e-4)

    def test_nesting_is_zero_for_parts_within_wholes_and_not_across(self):
        state = islands_state()  # level 1: two halves per image; level 2: one vector per image
        parts = state[:, :, :, 1].reshape(2, 16, 6)
        whole = state[:, :, :, 2].reshape(2, 16, 6)
        mask = np.ones((2, 16), "float32")
        self.assertAllClose(float(objectives.nesting_loss(parts, whole, mask)), 0.0)
        # The other way round (the whole below its parts): the pairs across the halves' border
        # agree below (cosine 1) and not above (0): 4 of each image's 24 neighbouring pairs.
        self.assertAllClose(float(objectives.nesting_loss(whole, parts, mask)), 4 / 24, rtol=1e-5)

    def test_island_loss_adds_the_nesting_over_neighbouring_levels(self):
        state, mask, flat = random_state(15, b=2, levels=4, d=3)
        level = [state[:, :, :, i].reshape(2, 16, 3) for i in range(4)]
        expected = (
            part_reference(level[1], flat, 2, 0.1)
            + part_reference(level[2], flat, 3, 0.1)
            + object_reference(level[3], flat, 0.1)
        ) / 3 + 0.7 * (
            nesting_reference(level[1], level[2], flat) + nesting_reference(level[2], level[3], flat)
        ) / 2
        got = float(objectives.island_loss(state, mask, (2, 3, 0), 0.1, nesting=0.7))
        self.assertAllClose(got, expected, rtol=1e-4)

    def test_denoise_loss_on_a_known_mask(self):
        rng = np.random.default_rng(8)
        reconstruction = rng.normal(size=(2, 3, 3, 4)).astype("float32")
        patches = rng.normal(size=(2, 3, 3, 4)).astype("float32")
        masked = np.zeros((2, 3, 3), bool)
        masked[0, 0, 1] = masked[1, 2, 2] = masked[1, 0, 0] = True
        cells = [(0, 0, 1), (1, 2, 2), (1, 0, 0)]
        expected = np.mean([np.mean((reconstruction[c] - patches[c]) ** 2) for c in cells])
        got = float(objectives.denoise_loss(reconstruction, patches, masked))
        self.assertAllClose(got, expected, rtol=1e-5)
        # Errors on unmasked patches do not count; no masked patch gives 0.
        changed = reconstruction.copy()
        changed[~masked] += 100.0
        self.assertAllClose(float(objectives.denoise_loss(changed, patches, masked)), expected, rtol=1e-5)
        self.assertEqual(
            float(objectives.denoise_loss(reconstruction, patches, np.zeros((2, 3, 3), bool))), 0.0
        )
