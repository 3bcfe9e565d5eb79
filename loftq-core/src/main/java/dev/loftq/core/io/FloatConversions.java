package dev.loftq.core.io;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Element conversions between little-endian F32/F16/BF16 bytes and float32, as torch does them:
 * widening is exact, narrowing rounds to nearest, ties to even (NaN stays NaN, overflow gives ±∞).
 * Stateless.
 */
public final class FloatConversions {
    private FloatConversions() {}

    /**
     * Decodes {@code count} elements of {@code dtype} from {@code src} (little-endian, from its
     * position, which is advanced) into {@code dst[offset..offset+count)}.
     *
     * @throws IllegalArgumentException for a dtype other than F32, F16, BF16
     */
    public static void decode(SafetensorsDType dtype, ByteBuffer src, float[] dst, int offset,
            int count) {
        ByteBuffer b = src.order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> b.asFloatBuffer().get(dst, offset, count);
            case BF16 -> {
                int p = b.position();
                for (int i = 0; i < count; i++) {
                    dst[offset + i] = Float.intBitsToFloat((b.getShort(p + 2 * i) & 0xFFFF) << 16);
                }
            }
            case F16 -> {
                int p = b.position();
                for (int i = 0; i < count; i++) {
                    dst[offset + i] = halfToFloat(b.getShort(p + 2 * i));
                }
            }
            default -> throw new IllegalArgumentException("dtype must be F32, F16 or BF16 to read "
                    + "as float32, got " + dtype);
        }
        b.position(b.position() + count * dtype.byteSize());
    }

    /**
     * Encodes {@code src[offset..offset+count)} as {@code dtype} into {@code dst} from its position
     * (advanced).
     *
     * @throws IllegalArgumentException for a dtype other than F32, F16, BF16
     */
    public static void encode(SafetensorsDType dtype, float[] src, int offset, int count,
            ByteBuffer dst) {
        ByteBuffer b = dst.order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> {
                for (int i = 0; i < count; i++) {
                    b.putFloat(src[offset + i]);
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    b.putShort(floatToBfloat16(src[offset + i]));
                }
            }
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    b.putShort(floatToHalf(src[offset + i]));
                }
            }
            default -> throw new IllegalArgumentException("dtype must be F32, F16 or BF16 to write "
                    + "float32 values, got " + dtype);
        }
    }

    /** bfloat16 bits of {@code x}, rounded to nearest even (NaN kept quiet). */
    public static short floatToBfloat16(float x) {
        int bits = Float.floatToRawIntBits(x);
        if (Float.isNaN(x)) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }

    /** IEEE binary16 bits of {@code x}, rounded to nearest even; overflow gives ±∞. */
    public static short floatToHalf(float x) {
        int bits = Float.floatToRawIntBits(x);
        int sign = (bits >>> 16) & 0x8000;
        int exp = (bits >>> 23) & 0xFF;
        int mant = bits & 0x7FFFFF;
        if (exp == 0xFF) {
            return (short) (sign | 0x7C00 | (mant != 0 ? 0x200 | (mant >>> 13) : 0));
        }
        int e = exp - 127 + 15;
        if (e >= 0x1F) {
            return (short) (sign | 0x7C00);
        }
        if (e <= 0) {
            if (e < -10) {
                return (short) sign; // rounds to zero (below half the smallest subnormal)
            }
            int m = mant | 0x800000; // implicit bit
            int shift = 14 - e; // 13 + (1 - e)
            int half = m >>> shift;
            int rest = m & ((1 << shift) - 1);
            int mid = 1 << (shift - 1);
            if (rest > mid || (rest == mid && (half & 1) != 0)) {
                half++;
            }
            return (short) (sign | half);
        }
        int half = (e << 10) | (mant >>> 13);
        int rest = mant & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) != 0)) {
            half++; // may carry into the exponent, up to infinity: correct
        }
        return (short) (sign | half);
    }

    /** binary16 → binary32, exact. */
    public static float halfToFloat(short half) {
        int h = half & 0xFFFF;
        int sign = (h & 0x8000) << 16;
        int exponent = (h >>> 10) & 0x1F;
        int mantissa = h & 0x3FF;
        if (exponent == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
        }
        if (exponent == 0) {
            float magnitude = mantissa * 0x1p-24f;
            return sign == 0 ? magnitude : -magnitude;
        }
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }
}
