/**
 * Wrapping any DJL block tree with quantized LoRA layers, and saving and loading the result in
 * the formats peft and transformers + bitsandbytes read.
 *
 * <pre>{@code
 * try (DjlBackend backend = DjlBackend.cpu(); MiniLmModel model = MiniLmModel.fromClasspath()) {
 *     LoraWrapper wrapper = LoraWrapper.builder(backend)
 *             .setTargets(LayerSelector.glob("encoder.layer.*.attention.self.query",
 *                     "encoder.layer.*.attention.self.value"))
 *             .setSpec(CodebookQuantizer.bitsandbytesNf4DoubleQuant(), 16, 16)  // NF4, r, alpha
 *             .optInitializer(LoraInitializer.loftq(5, 42L))                    // or qlora(seed)
 *             .build();
 *     try (LoraModel lora = wrapper.wrap(model.block())) {
 *         log.info("{}", lora.report());          // path, [out, in], bits, r, initial error
 *         // ... train model.block() with DJL's Trainer: only lora_A / lora_B have gradients
 *         LoraCheckpoint.saveAdapter(lora, Path.of("adapter"), "FEATURE_EXTRACTION", null);
 *         LoraCheckpoint.saveBackbone(lora, Path.of("backbone"), Map.of());
 *     }
 * }
 * }</pre>
 *
 * <ul>
 *   <li>{@link dev.loftq.djl.model.BlockPaths}: torch-style module paths of any tree (children
 *       of {@code SequentialBlock}/{@code ParallelBlock} by index).</li>
 *   <li>{@link dev.loftq.djl.wrap.LayerSelector}: glob, regex, peft {@code target_modules},
 *       predicate.</li>
 *   <li>{@link dev.loftq.djl.wrap.LoraSpec} and {@code LoraWrapper.Builder.rule}: quantizer, rank
 *       and alpha per layer (mixed precision).</li>
 *   <li>{@link dev.loftq.djl.wrap.LoraInitializer}: QLoRA (B = 0) or LoftQ; an interface, so
 *       ApiQ can be added.</li>
 *   <li>{@link dev.loftq.djl.wrap.BlockRewriter}: swaps a block everywhere the tree refers to it
 *       (children list and fields), or fails naming the path.</li>
 *   <li>{@link dev.loftq.djl.wrap.LoraCheckpoint}: peft adapter directory, bitsandbytes 4-bit
 *       backbone, and loading both onto a fresh tree of the same architecture.</li>
 * </ul>
 */
package dev.loftq.djl.wrap;
