<resource schema="epnml_aurora" resdir="aurora">
	<meta name="title">epnml aurora: aurora on the night side of Mars in FUV disk images, found by machine learning</meta>
	<meta name="description">
		Aurora detected in far-ultraviolet disk images of Mars (the EMM/EMUS case
		of Pacios et al.: a cheap prefilter -- binarise, mask the disk, crop, more
		than one close bright object on the night side -- then a small detector),
		one row per detected aurora: time of the image, auroral type (discrete,
		diffuse or sinuous) with the detector's score as ml_score, position of the
		aurora in the image and, where the image carries its viewing geometry, the
		planetocentric footprint of the aurora's box as s_region (body frame,
		Mars, east longitude) and its centre.  A quicklook shows the disk with the
		box.  The detector was trained on SIMULATED images only; rows derived from
		simulated images say "SIMULATED" in processing_level_desc.
	</meta>
	<meta name="creationDate">2026-12-01T00:00:00</meta>
	<meta name="subject">planetary-science</meta>
	<meta name="subject">solar-system-astronomy</meta>
	<meta name="subject">planetary-magnetospheres</meta>
	<meta name="subject">mars</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>
	<meta name="instrument">EMUS (Emirates Mars Ultraviolet Spectrometer), simulated</meta>
	<meta name="facility">Emirates Mars Mission</meta>

	<table id="epn_core" onDisk="True" adql="True">
		<!-- the registry record's shortName (at most 16 characters) -->
		<meta name="shortName">epnml aurora</meta>
		<meta name="description">
			Aurora on Mars, one per detection (EPN-TAP 2.0, dataproduct_type ci).
			The table is a view over the current rows of the store.
		</meta>
		<!-- every TAP response carries a DataLink service descriptor (adhoc:service)
			on granule_uid: the service dl below (service/dachs/userconfig.rd) -->
		<meta name="_associatedDatalinkService">
			<meta name="serviceId">dl</meta>
			<meta name="idColumn">granule_uid</meta>
		</meta>
		<mixin spatial_frame_type="body"
			optional_columns="thumbnail_url processing_level_desc publisher bib_reference time_scale time_refposition target_region feature_name spatial_coordinate_description datalink_url access_url access_format access_estsize"
			>//epntap2#table-2_0</mixin>
		<!-- BEGIN generated columns: python -m epnml.schemas.render -->
		<column name="ml_model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Name of the model that produced the row"/>
		<column name="ml_model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Version of the model that produced the row"/>
		<column name="ml_weights_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 of the model weights file"/>
		<column name="ml_run_id" type="text" ucd="meta.id;meta.dataset" required="True"
			description="Identifier of the ingest run that wrote the row"/>
		<column name="ml_score" type="double precision" ucd="stat.probability"
			description="Model score (probability) of the detection, 0..1"/>
		<column name="aurora_type" type="text" ucd="src.class"
			description="Auroral type assigned by the detector: discrete, diffuse or sinuous"/>
		<column name="aurora_x" type="double precision" unit="pix" ucd="pos.cartesian.x;instr.det"
			description="Column of the aurora's box centre in the image (0 = left edge)"/>
		<column name="aurora_y" type="double precision" unit="pix" ucd="pos.cartesian.y;instr.det"
			description="Row of the aurora's box centre in the image (0 = top edge)"/>
		<column name="aurora_width" type="double precision" unit="pix" ucd="phys.size;instr.det"
			description="Width of the aurora's box in the image"/>
		<column name="aurora_height" type="double precision" unit="pix" ucd="phys.size;instr.det"
			description="Height of the aurora's box in the image"/>
		<column name="aurora_lon" type="double precision" unit="deg" ucd="pos.bodyrc.lon"
			description="Planetocentric east longitude of the box centre (NULL without geometry or off the disk)"/>
		<column name="aurora_lat" type="double precision" unit="deg" ucd="pos.bodyrc.lat"
			description="Planetocentric latitude of the box centre (NULL without geometry or off the disk)"/>
		<column name="aurora_band" type="text" ucd="instr.bandpass"
			description="Emission band of the image (NULL when the file does not say)"/>
		<column name="aurora_objects" type="integer" ucd="meta.number"
			description="Bright objects the prefilter found on the night side">
			<values nullLiteral="-1"/>
		</column>
		<column name="source_image" type="text" ucd="meta.id;obs.image"
			description="File name of the source image"/>
		<!-- END generated columns -->
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT \colNames FROM epnml.aurora WHERE superseded_at IS NULL)
		</viewStatement>
		<publish/>
	</table>

	<table id="coverage_src" onDisk="True" adql="False">
		<meta name="description">
			The time and spectral extent of epn_core's rows under the names and units
			DaCHS' coverage updater knows (t_min/t_max in JD, em_min/em_max as vacuum
			wavelengths in m).  Not queryable through TAP: only `dachs limits` reads it.
			sky_ra/sky_dec are NULL: the footprints are on Mars (body frame), not on
			the sky.
		</meta>
		<column name="t_min" type="double precision" unit="d" ucd="time.start;obs"/>
		<column name="t_max" type="double precision" unit="d" ucd="time.end;obs"/>
		<column name="em_min" type="double precision" unit="m" ucd="em.wl;stat.min"/>
		<column name="em_max" type="double precision" unit="m" ucd="em.wl;stat.max"/>
		<column name="sky_ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"/>
		<column name="sky_dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"/>
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT time_min AS t_min, time_max AS t_max,
					299792458.0 / NULLIF(spectral_range_max, 0) AS em_min,
					299792458.0 / NULLIF(spectral_range_min, 0) AS em_max,
					NULL::double precision AS sky_ra, NULL::double precision AS sky_dec
				FROM \schema.epn_core)
		</viewStatement>
	</table>

	<!-- Coverage for the registry records, from the rows: `dachs limits aurora/q`
		(service/provision.sh coverage, run after every ingest) fills it in from
		coverage_src (temporal in MJD, as VODataService wants).  No spatial coverage
		(body-frame footprints are not sky positions). -->
	<coverage>
		<updater sourceTable="coverage_src"/>
	</coverage>

	<FEED source="%#epnml-datalink"/>

	<data id="import">
		<make table="epn_core"/>
	</data>

	<data id="coverage">
		<make table="coverage_src"/>
	</data>

	<regSuite title="epnml aurora regression">
		<regTest title="epn_core answers through TAP">
			<url parSet="TAP" QUERY="SELECT TOP 1 service_title, target_name FROM epnml_aurora.epn_core"
				>/tap/sync</url>
			<code>
				self.assertHasStrings("epnml_aurora")
			</code>
		</regTest>
	</regSuite>
</resource>
