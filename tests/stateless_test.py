import json

import numpy as np
import tensorflow as tf

from glom_tf import stateless
from tests.test_case import GlomTestCase


def _mix_np(x):
    """The hash of stateless._mix in numpy uint32 arithmetic (wrapping)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


class StatelessTest(GlomTestCase):
    def test_bits_match_a_numpy_model_of_the_hash(self):
        seed = np.array([7, 123456789], "int32")
        with np.errstate(over="ignore"):
            s = seed.astype("uint32")
            key = _mix_np(_mix_np(s[0] + np.uint32(0x9E3779B9)) ^ s[1])
            counter = np.arange(6 * 5, dtype="uint32").reshape(6, 5)
            expected = _mix_np(counter * np.uint32(0x9E3779B9) + key)
        self.assertAllEqual(np.asarray(stateless.bits((6, 5), seed)), expected)

    def test_uniform_moments_and_independence_of_seeds(self):
        a = np.asarray(stateless.uniform((400, 500), np.array([3, 5], "int32")))
        b = np.asarray(stateless.uniform((400, 500), np.array([3, 6], "int32")))
        self.assertBetween(a.min(), 0.0, 1e-4)
        self.assertLess(a.max(), 1.0)
        self.assertAllClose([a.mean(), a.var()], [0.5, 1 / 12], atol=2e-3)
        self.assertLess(abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]), 0.01)  # 200k pairs: sd 0.002
        self.assertLess(abs(np.corrcoef(a.ravel()[1:], a.ravel()[:-1])[0, 1]), 0.01)
        self.assertAllEqual(a, np.asarray(stateless.uniform((400, 500), np.array([3, 5], "int32"))))

    def test_dropout_rate_scale_and_replay_under_xla(self):
        x = np.ones((300, 400), "float32")
        seed = tf.constant([1, 2])
        eager = np.asarray(stateless.dropout(x, 0.1, seed))
        self.assertAllClose((eager == 0).mean(), 0.1, atol=3e-3)
        self.assertAllClose(eager[eager != 0], np.full((eager != 0).sum(), 1 / 0.9))
        compiled = tf.function(lambda x, s: stateless.dropout(x, 0.1, s), jit_compile=True)
        self.assertAllEqual(np.asarray(compiled(x, seed)), eager)  # the same mask when recomputed
        self.assertAllEqual(np.asarray(stateless.dropout(x, 0.0, seed)), x)

    def test_dynamic_batch_in_a_graph(self):
        from keras import ops

        fn = tf.function(lambda x, s: stateless.uniform(ops.shape(x), s))
        concrete = fn.get_concrete_function(tf.TensorSpec((None, 3)), tf.TensorSpec((2,), tf.int32))
        seed = tf.constant([4, 4])
        self.assertAllEqual(concrete(tf.zeros((5, 3)), seed), stateless.uniform((5, 3), seed))

    def test_jax_backend_draws_the_same_numbers(self):
        script = (
            "import json, numpy as np\n"
            "from glom_tf import stateless\n"
            "print(json.dumps(np.asarray(stateless.bits((3, 4), np.array([9, 11], 'int32'))).tolist()))\n"
        )
        jax_bits = json.loads(self.run_under_jax(script).strip().splitlines()[-1])
        tf_bits = np.asarray(stateless.bits((3, 4), np.array([9, 11], "int32")))
        self.assertAllEqual(np.array(jax_bits, "uint32"), tf_bits)
