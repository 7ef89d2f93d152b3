// tfjs-core's public entry registers kernels but not their gradients (the @tensorflow/tfjs bundle
// does that). Importing tfjs-core's own gradient registrations here makes `tf.grad` work for
// users who install only @tensorflow/tfjs-core. The build bundles this module (see tsup.config.ts)
// because tfjs-core ships it only as extensionless ESM, which Node cannot load directly; the
// bundled copy registers into tfjs's global gradient registry, as the @tensorflow/tfjs bundle does.
import '@tensorflow/tfjs-core/dist/register_all_gradients'
import './plainMatMulGrad.js'
