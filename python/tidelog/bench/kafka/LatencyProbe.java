import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.LockSupport;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Produce-to-consume latency with Kafka's Java clients, measured as the suite's
 * latency workload measures tidelog's: one record at a time, its first 8 bytes
 * the sender's System.nanoTime(); the sender waits for its ack (acks=all,
 * linger 0) and sleeps PACE_NS between records; a consumer thread of the same
 * JVM (fetch.max.wait.ms=1) takes the difference on receipt. EndToEndLatency,
 * Kafka's own tool, reports whole milliseconds only; this prints every sample
 * in nanoseconds, one per line, after WARMUP unmeasured records.
 *
 * Usage: java -cp 'LIBS/*' LatencyProbe.java BOOTSTRAP TOPIC RECORDS VALUE_BYTES PACE_NS WARMUP
 * Run by tidelog.bench (contender "kafka (Java clients)"); the topic must exist, one partition.
 */
public class LatencyProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        int records = Integer.parseInt(args[2]), size = Integer.parseInt(args[3]);
        long paceNs = Long.parseLong(args[4]);
        int warmup = Integer.parseInt(args[5]);
        int total = warmup + records;

        Properties pp = new Properties();
        pp.put("bootstrap.servers", bootstrap);
        pp.put("acks", "all");
        pp.put("linger.ms", "0");
        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("group.id", "tidelog-bench-java");
        cp.put("enable.auto.commit", "false");
        cp.put("fetch.max.wait.ms", "1");
        cp.put("fetch.min.bytes", "1");

        TopicPartition tp = new TopicPartition(topic, 0);
        List<Long> samples = new ArrayList<>(total);
        CountDownLatch ready = new CountDownLatch(1);
        Thread consumer = new Thread(() -> {
            try (KafkaConsumer<byte[], byte[]> c =
                         new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                c.assign(List.of(tp));
                c.seekToEnd(List.of(tp));
                c.position(tp);
                ready.countDown();
                int seen = 0;
                while (seen < total) {
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                        long now = System.nanoTime();
                        samples.add(now - ByteBuffer.wrap(r.value()).getLong());
                        seen++;
                    }
                }
            }
        });
        consumer.start();
        ready.await();
        try (KafkaProducer<byte[], byte[]> p =
                     new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
            byte[] value = new byte[Math.max(size, 8)];
            for (int i = 0; i < total; i++) {
                ByteBuffer.wrap(value).putLong(0, System.nanoTime());
                p.send(new ProducerRecord<>(topic, 0, null, value.clone())).get();
                LockSupport.parkNanos(paceNs);  // as the Python senders' time.sleep
            }
        }
        consumer.join();
        StringBuilder out = new StringBuilder();
        for (int i = warmup; i < samples.size(); i++) out.append(samples.get(i)).append('\n');
        System.out.print(out);
    }
}
